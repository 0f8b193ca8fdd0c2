//! How a client behaves: timeouts, batch sizes, retries.

use std::time::Duration;

/// How the client behaves. Defaults suit a phone on a poor link.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Reported to the server at every Hello.
    pub app_version: String,
    /// The language the user reads (BCP 47, `zh-CN` or `en`), sent at every Hello: the server
    /// words its refusals in it. `ErrorCode::message` takes the language per call.
    pub language: String,
    /// Ops per push (capped by the server's limit).
    pub batch_size: usize,
    /// Pushes in flight at once: with one at a time a link's round trips, not its bandwidth,
    /// set the pace.
    pub max_in_flight: usize,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Give up on one request after this long.
    pub request_timeout: Duration,
    /// How often the engine's idle connection for Notify proves it is alive (QUIC PING) when
    /// nothing else moves: shorter notices a dead path sooner and costs radio time (it is held
    /// only while the app is in the foreground; kept between 1 and 30 s, below the 60 s idle
    /// timeout). A sync's own connection pings every half second while it waits for an answer.
    pub keep_alive: Duration,
    /// Attempts per sync before reporting a network error (with exponential back-off).
    pub max_attempts: u32,
    /// First back-off delay; doubles per attempt.
    pub initial_backoff: Duration,
    /// Dial this `host:port` instead of the one stored at enrollment.
    pub server_override: Option<String>,
    /// Upload photos only on unmetered networks (see [`crate::Client::set_network_metered`]).
    pub photos_only_unmetered: bool,
    /// Pace photo uploads to at most this many bytes per second (None: as fast as the link
    /// allows), leaving room for records and other apps on a thin rural link.
    pub photo_upload_rate: Option<u64>,
    /// Where the device's key and certificates live (None: files in the state directory).
    pub key_store: Option<std::sync::Arc<dyn crate::KeyStore>>,
    /// The platform's clock since boot (None: `/proc/uptime` where there is one).
    pub monotonic_clock: Option<std::sync::Arc<dyn crate::MonotonicClock>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            app_version: String::new(),
            language: "zh-CN".to_owned(),
            batch_size: 200,
            max_in_flight: 4,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(15),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(250),
            server_override: None,
            photos_only_unmetered: false,
            photo_upload_rate: None,
            key_store: None,
            monotonic_clock: None,
        }
    }
}
