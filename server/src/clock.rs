//! The server's wall clock. Code that needs the time takes it as a parameter (`now_ms`);
//! only the edges (the RPC handlers, the periodic tasks, the CLI and the admin API) read it here,
//! so every rule can be tested at a moment of the test's choosing.

/// Wall clock, Unix milliseconds. The only place the server reads the clock for records.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
