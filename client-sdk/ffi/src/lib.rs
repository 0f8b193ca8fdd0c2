//! The patrolsync device SDK for Kotlin, Swift and Python.
//!
//! One object, [`PatrolClient`], with async methods for what the Rust `Client` offers; an
//! [`EngineHandle`] for the background engine; a [`SyncListener`] the app implements to hear
//! events and state changes. Everything crossing the boundary is owned and flat: ids and photo
//! hashes as strings (UUID text, lowercase hex), times as Unix milliseconds, enumerations as
//! their snake_case names (`inspected`, `blocked_fire_lane`), every failure as a
//! [`PatrolError`] carrying an [`ErrorCode`] with its parameters and the message in the client's
//! language (`zh-CN` unless the app chooses `en`).
//!
//! The calls run on a runtime this library owns, so an app needs no Rust async runtime;
//! cancelling a call on the app's side (a Kotlin coroutine, a Swift task, an asyncio task)
//! cancels it here too. Cancelling loses nothing a call already stored: records are durable
//! when their call returns, and a cancelled sync sends the rest next time. One call is not
//! undone by cancelling: an `enroll` the server already accepted has used its single-use code.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use patrolsync_sdk as sdk;
use sdk::proto::{self as proto, HazardId};

uniffi::setup_scaffolding!();

mod codes;
mod records;

use codes::failed;
pub use codes::{ErrorCode, PatrolError};
pub use records::*;

/// The runtime every call and the engine run on.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("patrolsync")
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start the patrolsync runtime: {e}"))
});

/// Runs `work` on [`RUNTIME`]; dropping the returned future (the app cancelled) aborts it.
async fn on_runtime<T: Send + 'static>(
    work: impl Future<Output = Result<T, PatrolError>> + Send + 'static,
) -> Result<T, PatrolError> {
    let handle = tokio_util::task::AbortOnDropHandle::new(RUNTIME.spawn(work));
    match handle.await {
        Ok(result) => result,
        Err(e) => Err(PatrolError::internal(&e.to_string())),
    }
}

/// How the client behaves; every field has a default an app can keep.
#[derive(Clone, Debug, uniffi::Record)]
pub struct ClientOptions {
    /// The app's version, reported to the server.
    #[uniffi(default = "")]
    pub app_version: String,
    /// Language of the messages in errors and events, and of the server's refusals: `zh-CN`
    /// (default) or `en`.
    #[uniffi(default = "zh-CN")]
    pub language: String,
    /// Upload photos only on an unmetered network (Wi-Fi).
    #[uniffi(default = false)]
    pub photos_only_unmetered: bool,
    /// `host:port` to use instead of the enrolled server (tests, a moved server).
    #[uniffi(default = None)]
    pub server_override: Option<String>,
    /// How long to wait for the server's answer to one request, milliseconds.
    #[uniffi(default = 30000)]
    pub request_timeout_ms: u64,
    /// How long to wait for a connection to the server, milliseconds.
    #[uniffi(default = 10000)]
    pub connect_timeout_ms: u64,
    /// How often an open connection proves it is alive when idle, milliseconds (QUIC PING;
    /// shorter notices a dead path sooner, longer spares the radio).
    #[uniffi(default = 15000)]
    pub keep_alive_ms: u64,
}

/// A device's handle on its local store and the server.
#[derive(uniffi::Object)]
pub struct PatrolClient {
    client: sdk::Client,
    language: String,
    /// The app's listener and the task feeding it.
    listener: Mutex<Option<tokio_util::task::AbortOnDropHandle<()>>>,
}

impl PatrolClient {
    fn client(&self) -> (sdk::Client, String) {
        (self.client.clone(), self.language.clone())
    }
}

#[uniffi::export]
impl PatrolClient {
    /// Opens (creating if needed) the state directory: the local database and, once enrolled,
    /// the device's credentials.
    ///
    /// `key_store` keeps the device's key and certificates where the app says (Android
    /// Keystore-backed storage, the iOS Keychain); without one they are files in `state_dir`.
    /// `clock` gives the time since boot (iOS: `ProcessInfo.systemUptime`); without one the
    /// library reads `/proc/uptime` where there is one.
    #[uniffi::constructor]
    pub async fn open(
        state_dir: String,
        options: ClientOptions,
        key_store: Option<Arc<dyn KeyStore>>,
        clock: Option<Arc<dyn PlatformClock>>,
    ) -> Result<Arc<Self>, PatrolError> {
        let language = options.language.clone();
        on_runtime(async move {
            let config = sdk::ClientConfig {
                key_store: key_store.map(|k| Arc::new(ForeignKeys(k)) as Arc<dyn sdk::KeyStore>),
                monotonic_clock: clock
                    .map(|c| Arc::new(ForeignClock(c)) as Arc<dyn sdk::MonotonicClock>),
                app_version: options.app_version,
                language: options.language.clone(),
                photos_only_unmetered: options.photos_only_unmetered,
                server_override: options.server_override,
                request_timeout: Duration::from_millis(options.request_timeout_ms.max(1)),
                connect_timeout: Duration::from_millis(options.connect_timeout_ms.max(1)),
                keep_alive: Duration::from_millis(options.keep_alive_ms.max(1000)),
                ..sdk::ClientConfig::default()
            };
            let client = sdk::Client::open(PathBuf::from(state_dir), config)
                .await
                .map_err(failed(&options.language))?;
            Ok(Arc::new(PatrolClient {
                client,
                language: options.language,
                listener: Mutex::new(None),
            }))
        })
        .await
        .map_err(|e| e.in_language(&language))
    }

    /// Enrolls this device with the code (a `patrolsync://…` string or QR content) from an
    /// admin. `server` overrides the address in the code.
    pub async fn enroll(
        &self,
        enrollment: String,
        server: Option<String>,
        device_name: String,
    ) -> Result<Enrollment, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let e = client
                .enroll(&enrollment, server.as_deref(), &device_name)
                .await
                .map_err(failed(&lang))?;
            Ok(Enrollment {
                device_id: e.device_id,
                server: e.server,
                user: e.user,
                role: e.role,
                grid_cells: e.grid_cells,
            })
        })
        .await
    }

    /// Records a check-in in the local outbox and returns its id. Never waits on the network.
    pub async fn record_checkin(&self, check_in: CheckInInput) -> Result<String, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let c = check_in.into_sdk().map_err(failed(&lang))?;
            let id = client.record_checkin(c).await.map_err(failed(&lang))?;
            Ok(id.to_string())
        })
        .await
    }

    /// Records an inspection against a checklist template; items answered `issue` raise
    /// hazards as the template says. Returns the check-in's id and the hazards' ids.
    pub async fn record_checklist(
        &self,
        check_in: CheckInInput,
    ) -> Result<RecordedCheckIn, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let c = check_in.into_sdk().map_err(failed(&lang))?;
            let r = client.record_checklist(c).await.map_err(failed(&lang))?;
            Ok(RecordedCheckIn {
                check_in: r.check_in.to_string(),
                hazards: r.hazards.iter().map(ToString::to_string).collect(),
            })
        })
        .await
    }

    /// Reports a hazard (offline); returns its id.
    pub async fn report_hazard(&self, hazard: HazardInput) -> Result<String, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let h = hazard.into_sdk().map_err(failed(&lang))?;
            let id = client.report_hazard(h).await.map_err(failed(&lang))?;
            Ok(id.to_string())
        })
        .await
    }

    /// Moves a hazard through its closed loop (offline): `kind` is `notify`, `fix_on_spot`,
    /// `submit_fix`, `verify_pass`, `verify_fail`, `transfer`, `agency_accept`,
    /// `agency_return`, `agency_fix`, `reopen` or `merge`. Returns the event's id.
    pub async fn transition_hazard(
        &self,
        hazard: String,
        kind: String,
        transition: TransitionInput,
    ) -> Result<String, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let id = hazard_id(&hazard, "hazard").map_err(failed(&lang))?;
            let kind = parse::<proto::hazard::EventKind>("kind", &kind).map_err(failed(&lang))?;
            let t = transition.into_sdk().map_err(failed(&lang))?;
            let event = client
                .transition_hazard(id, kind, t)
                .await
                .map_err(failed(&lang))?;
            Ok(event.to_string())
        })
        .await
    }

    /// Edits one field of a hazard (offline); the latest edit wins everywhere.
    pub async fn edit_hazard(&self, hazard: String, edit: HazardEdit) -> Result<(), PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let id = hazard_id(&hazard, "hazard").map_err(failed(&lang))?;
            let value = edit.into_sdk().map_err(failed(&lang))?;
            client.edit_hazard(id, value).await.map_err(failed(&lang))
        })
        .await
    }

    /// Every hazard in the device's view, most recently changed first.
    pub async fn hazards(&self) -> Result<Vec<Hazard>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let views = client.hazards().await.map_err(failed(&lang))?;
            Ok(views.into_iter().map(|v| Hazard::new(v, &lang)).collect())
        })
        .await
    }

    /// A page of the hazards in view that `filter` selects, most recently changed first.
    pub async fn hazards_where(&self, filter: HazardFilter) -> Result<Vec<Hazard>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let filter = sdk::HazardFilter {
                open_only: filter.open_only,
                cell: filter.cell,
                limit: filter.limit,
                offset: filter.offset,
            };
            let views = client.hazards_where(&filter).await.map_err(failed(&lang))?;
            Ok(views.into_iter().map(|v| Hazard::new(v, &lang)).collect())
        })
        .await
    }

    /// This device's check-ins, newest first: `limit` of them after the one with id `after`
    /// (none: the first page).
    pub async fn recent_check_ins(
        &self,
        limit: u32,
        after: Option<String>,
    ) -> Result<Vec<LocalCheckIn>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let page = client
                .recent_check_ins(limit, after.as_deref())
                .await
                .map_err(failed(&lang))?;
            Ok(page.into_iter().map(LocalCheckIn::from).collect())
        })
        .await
    }

    /// One hazard, if the device can see it.
    pub async fn hazard(&self, id: String) -> Result<Option<Hazard>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let id = hazard_id(&id, "hazard").map_err(failed(&lang))?;
            let view = client.hazard(id).await.map_err(failed(&lang))?;
            Ok(view.map(|v| Hazard::new(v, &lang)))
        })
        .await
    }

    /// The checkpoints of the device's cells, with position, radius and tag.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let cps = client.checkpoints().await.map_err(failed(&lang))?;
            Ok(cps.into_iter().map(Checkpoint::from).collect())
        })
        .await
    }

    /// The key units of the device's cells (only those in `cell` when given), by code.
    pub async fn units(&self, cell: Option<String>) -> Result<Vec<KeyUnit>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let units = client.units(cell.as_deref()).await.map_err(failed(&lang))?;
            Ok(units.into_iter().map(KeyUnit::from).collect())
        })
        .await
    }

    /// The must-visit households of the device's cells (only those in `cell` when given).
    pub async fn households(&self, cell: Option<String>) -> Result<Vec<Household>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let all = client
                .households(cell.as_deref())
                .await
                .map_err(failed(&lang))?;
            Ok(all.into_iter().map(Household::from).collect())
        })
        .await
    }

    /// The tasks of the device's cells (help calls, inspections, fix checks, visits), newest
    /// first; `TaskOffered` events say when one is offered to this user.
    pub async fn tasks(&self) -> Result<Vec<TaskItem>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let all = client.tasks().await.map_err(failed(&lang))?;
            Ok(all.into_iter().map(|v| TaskItem::new(v, &lang)).collect())
        })
        .await
    }

    /// One task, if the device holds it.
    pub async fn task(&self, id: String) -> Result<Option<TaskItem>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let id = task_id(&id).map_err(failed(&lang))?;
            let v = client.task(id).await.map_err(failed(&lang))?;
            Ok(v.map(|v| TaskItem::new(v, &lang)))
        })
        .await
    }

    /// Takes a task (offline); returns the step's id. If another patroller took it first,
    /// everyone keeps theirs and this step shows as a `task_taken` conflict.
    pub async fn accept_task(&self, id: String) -> Result<String, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let id = task_id(&id).map_err(failed(&lang))?;
            Ok(client
                .accept_task(id)
                .await
                .map_err(failed(&lang))?
                .to_string())
        })
        .await
    }

    /// Declines a task (offline): the server offers it to the next patroller.
    pub async fn decline_task(&self, id: String, note: String) -> Result<String, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let id = task_id(&id).map_err(failed(&lang))?;
            Ok(client
                .decline_task(id, note)
                .await
                .map_err(failed(&lang))?
                .to_string())
        })
        .await
    }

    /// At the task's place (offline): a check-in at its checkpoint when it names one, with
    /// `fix`. Returns the check-in's id, if one was made.
    pub async fn arrive(
        &self,
        id: String,
        fix: Option<GeoFix>,
    ) -> Result<Option<String>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let id = task_id(&id).map_err(failed(&lang))?;
            let fix = fix
                .map(GeoFix::into_proto)
                .transpose()
                .map_err(failed(&lang))?;
            let a = client.arrive(id, fix).await.map_err(failed(&lang))?;
            Ok(a.check_in.map(|c| c.to_string()))
        })
        .await
    }

    /// Completes a task (offline): `result` is `found_fine`, `help_given` or `hazard_reported`
    /// (then `hazard` names the hazard reported).
    pub async fn complete_task(
        &self,
        id: String,
        result: String,
        hazard: Option<String>,
        note: String,
    ) -> Result<String, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let id = task_id(&id).map_err(failed(&lang))?;
            let result = result
                .parse::<sdk::proto::task::TaskResult>()
                .map_err(|_| sdk::ErrorCode::Invalid {
                    field: "result".into(),
                    reason: "unknown_value".into(),
                })
                .map_err(failed(&lang))?;
            let hazard = hazard
                .map(|h| hazard_id(&h, "hazard"))
                .transpose()
                .map_err(failed(&lang))?;
            Ok(client
                .complete_task(id, result, hazard, note)
                .await
                .map_err(failed(&lang))?
                .to_string())
        })
        .await
    }

    /// Puts the user on duty (在岗) or takes them off; off duty the position is forgotten
    /// at once, on the phone and (at the next sync) on the server.
    pub async fn set_on_duty(&self, on_duty: bool) -> Result<(), PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move { client.set_on_duty(on_duty).await.map_err(failed(&lang)) }).await
    }

    /// Gives the device's latest fix from the platform's location service: kept and sent with
    /// each sync only while on duty. Returns whether it was kept.
    pub async fn update_position(&self, fix: GeoFix) -> Result<bool, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let fix = fix.into_proto().map_err(failed(&lang))?;
            client.update_position(fix).await.map_err(failed(&lang))
        })
        .await
    }

    /// Whether the user is on duty, and the fix the next sync sends.
    pub async fn duty(&self) -> Result<Duty, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let d = client.duty().await.map_err(failed(&lang))?;
            Ok(Duty {
                on_duty: d.on_duty,
                position: d.position.map(GeoFix::from_proto),
            })
        })
        .await
    }

    /// The latest version of every checklist template.
    pub async fn templates(&self) -> Result<Vec<Template>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let ts = client.templates().await.map_err(failed(&lang))?;
            Ok(ts.into_iter().map(Template::from).collect())
        })
        .await
    }

    /// What is pending and how the last sync went; never touches the network.
    pub async fn status(&self) -> Result<Status, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let s = client.status().await.map_err(failed(&lang))?;
            Ok(Status::new(s, &lang))
        })
        .await
    }

    /// The sync state now (the listener hears every change).
    pub fn state(&self) -> SyncState {
        SyncState::new(&self.client.state().borrow(), &self.language)
    }

    /// Ops the server refused, newest first, each with its code and message.
    pub async fn rejected(&self) -> Result<Vec<RejectedOp>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let ops = client.rejected().await.map_err(failed(&lang))?;
            Ok(ops.into_iter().map(|r| RejectedOp::new(r, &lang)).collect())
        })
        .await
    }

    /// Every photo the device holds or held, newest first.
    pub async fn photos(&self) -> Result<Vec<Photo>, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let ps = client.photos().await.map_err(failed(&lang))?;
            Ok(ps.into_iter().map(|p| Photo::new(p, &lang)).collect())
        })
        .await
    }

    /// Copies the photo at `path` into the device's store and queues it; returns its SHA-256
    /// (lowercase hex) for the record that shows it. The app may delete its file afterwards.
    pub async fn add_photo(&self, path: String) -> Result<String, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let sha = client.add_photo(&path).await.map_err(failed(&lang))?;
            Ok(hex::encode(sha))
        })
        .await
    }

    /// Queues a photo given as bytes (a camera buffer); returns its SHA-256 (lowercase hex).
    pub async fn add_photo_bytes(&self, bytes: Vec<u8>) -> Result<String, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let sha = client
                .add_photo_bytes(&bytes)
                .await
                .map_err(failed(&lang))?;
            Ok(hex::encode(sha))
        })
        .await
    }

    /// Downloads a photo of a hazard in the device's view to `path` (resuming a partial
    /// download); returns its size. The bytes are checked against the hash.
    pub async fn download_photo(&self, sha256: String, path: String) -> Result<u64, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let sha = photo_hash(&sha256, "sha256").map_err(failed(&lang))?;
            client
                .download_photo(sha, &path)
                .await
                .map_err(failed(&lang))
        })
        .await
    }

    /// Syncs now: records, then what others changed, then photos.
    pub async fn sync(&self) -> Result<SyncSummary, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let s = client.sync().await.map_err(failed(&lang))?;
            Ok(SyncSummary::new(s, &lang))
        })
        .await
    }

    /// A sync bounded by a background window (WorkManager, BGTaskScheduler): records first,
    /// then the pull, then photos if `include_photos`; stops when `within_ms` has passed.
    pub async fn sync_for(
        &self,
        within_ms: u64,
        include_photos: bool,
    ) -> Result<SyncSummary, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let s = client
                .sync_for(Duration::from_millis(within_ms), include_photos)
                .await
                .map_err(failed(&lang))?;
            Ok(SyncSummary::new(s, &lang))
        })
        .await
    }

    /// Tells the client the phone moved to another network, and whether it is metered.
    pub fn network_changed(&self, metered: bool) {
        self.client.set_network_metered(metered);
    }

    /// Hands the app's listener every event and state change from now on (replacing the one
    /// set before). It is called on a thread of its own, one call at a time and in order: a
    /// slow handler delays only the listener, never a sync; hop to the UI thread there. A
    /// listener that throws loses that one call. A listener that holds the client keeps it
    /// alive: call `clear_listener` when done.
    pub fn set_listener(&self, listener: Arc<dyn SyncListener>) {
        let mut events = self.client.subscribe();
        let mut states = self.client.state_changes();
        let first = SyncState::new(&self.client.state().borrow(), &self.language);
        let lang = self.language.clone();
        let (to_app, calls) = std::sync::mpsc::channel::<Call>();
        // The app's code runs here, away from the runtime's workers. The thread ends when the
        // feeding task below does (it holds the sender).
        let spawned = std::thread::Builder::new()
            .name("patrolsync-listener".into())
            .spawn(move || {
                for call in calls {
                    let listener = &listener;
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match call {
                        Call::Event(e) => listener.on_event(e),
                        Call::State(s) => listener.on_state(s),
                    }));
                }
            });
        if spawned.is_err() {
            return;
        }
        let task = RUNTIME.spawn(async move {
            if to_app.send(Call::State(first)).is_err() {
                return;
            }
            loop {
                let call = tokio::select! {
                    state = states.recv() => match state {
                        Ok(s) => Call::State(SyncState::new(&s, &lang)),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            Call::Event(SyncEvent::Missed { count: n })
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                    event = events.recv() => match event {
                        Ok(e) => Call::Event(SyncEvent::new(e, &lang)),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            Call::Event(SyncEvent::Missed { count: n })
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    },
                };
                if to_app.send(call).is_err() {
                    return;
                }
            }
        });
        let mut slot = self.listener.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(tokio_util::task::AbortOnDropHandle::new(task));
    }

    /// Closes the local store and stops calling the listener; later calls fail with
    /// `storage`. Stop the engine first.
    pub async fn close(&self) {
        self.clear_listener();
        let client = self.client.clone();
        let _ = RUNTIME.spawn(async move { client.close().await }).await;
    }

    /// Stops calling the listener.
    pub fn clear_listener(&self) {
        let mut slot = self.listener.lock().unwrap_or_else(|e| e.into_inner());
        *slot = None;
    }

    /// Starts the background engine (Notify, timer, back-off). It runs until the handle's
    /// `stop` or until the handle is dropped.
    pub fn start_engine(&self, options: EngineOptions) -> Arc<EngineHandle> {
        let _inside = RUNTIME.enter();
        let engine = self.client.start_engine(sdk::EngineOptions {
            interval: Duration::from_millis(options.interval_ms.max(1000)),
            initial_backoff: Duration::from_millis(options.initial_backoff_ms.max(100)),
            max_backoff: Duration::from_millis(options.max_backoff_ms.max(1000)),
            listen: options.listen,
        });
        Arc::new(EngineHandle {
            engine: Mutex::new(Some(engine)),
        })
    }

    /// Signs this device out for the next volunteer on a shared phone: wipes the local store,
    /// the credentials and the photos. What was not yet sent is refused (`unsent_records`),
    /// handed over (kept under this volunteer's identity and sent as theirs at the next syncs)
    /// or discarded, as `unsent` says.
    pub async fn sign_out(&self, unsent: Unsent) -> Result<(), PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move { client.sign_out(unsent.into()).await.map_err(failed(&lang)) }).await
    }

    /// Throws away the hand-overs the server refused because their device was revoked after
    /// the sign-out, or is no longer recognised (it will not take them); the others stay and
    /// are sent. Returns the records and photos discarded.
    pub async fn discard_handed_over(&self) -> Result<u64, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move { client.discard_handed_over().await.map_err(failed(&lang)) }).await
    }
}

/// The benchmark's breakdown of the binding's own cost (built only with the `bench` feature).
#[cfg(feature = "bench")]
#[uniffi::export]
impl PatrolClient {
    /// Takes a check-in across the boundary and does nothing with it: what lowering the
    /// record and one plain call cost.
    pub fn accept_check_in(&self, check_in: CheckInInput) -> u32 {
        check_in.checkpoint.len() as u32
    }

    /// An async call that does nothing on the library's runtime: what the foreign language's
    /// await, the hand-off to the runtime and the wake back cost.
    pub async fn nothing_on_runtime(&self) -> Result<(), PatrolError> {
        on_runtime(async { Ok(()) }).await
    }

    /// An async call that is ready at once, on the caller's thread: the foreign language's
    /// await alone.
    pub async fn nothing_at_once(&self) -> Result<(), PatrolError> {
        Ok(())
    }
}

/// One call to the app's listener.
enum Call {
    Event(SyncEvent),
    State(SyncState),
}

/// The benchmark's native side: the same calls as the binding's, without the binding.
#[cfg(feature = "bench")]
#[uniffi::export]
impl PatrolClient {
    /// Records `n` check-ins like `check_in` through the Rust API, in this process, on this
    /// store; returns the nanoseconds taken (built only with the `bench` feature).
    pub async fn record_checkins_natively(
        &self,
        check_in: CheckInInput,
        n: u32,
    ) -> Result<u64, PatrolError> {
        let (client, lang) = self.client();
        on_runtime(async move {
            let started = std::time::Instant::now();
            for _ in 0..n {
                let c = check_in.clone().into_sdk().map_err(failed(&lang))?;
                client.record_checkin(c).await.map_err(failed(&lang))?;
            }
            Ok(started.elapsed().as_nanos() as u64)
        })
        .await
    }
}

/// The app's ears: events (a sync finished, a hazard changed, a photo moved) and each change of
/// the sync state. Called on a thread of the library's, in order.
#[uniffi::export(with_foreign)]
pub trait SyncListener: Send + Sync {
    /// Something happened.
    fn on_event(&self, event: SyncEvent);
    /// The sync state changed.
    fn on_state(&self, state: SyncState);
}

/// Where the app keeps the device's credentials: bytes under a name (`device.key`,
/// `device.crt`, `server-ca.der`). Called on a library thread.
#[uniffi::export(with_foreign)]
pub trait KeyStore: Send + Sync {
    /// The bytes saved under `name`, or none.
    fn load(&self, name: String) -> Result<Option<Vec<u8>>, KeyStoreError>;
    /// Saves `bytes` under `name` durably, replacing what was there.
    fn save(&self, name: String, bytes: Vec<u8>) -> Result<(), KeyStoreError>;
    /// Removes what is saved under `name` (nothing saved is not an error).
    fn remove(&self, name: String) -> Result<(), KeyStoreError>;
}

/// The app's key store failed.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum KeyStoreError {
    /// It could not do what was asked.
    #[error("key store: {reason}")]
    Failed {
        /// Why, for the log.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyStoreError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KeyStoreError::Failed { reason: e.reason }
    }
}

/// The platform's clock since boot.
#[uniffi::export(with_foreign)]
pub trait PlatformClock: Send + Sync {
    /// Milliseconds since boot, if known.
    fn since_boot_ms(&self) -> Option<u64>;
}

/// The app's key store, as the SDK's.
struct ForeignKeys(Arc<dyn KeyStore>);

impl std::fmt::Debug for ForeignKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForeignKeys")
    }
}

impl sdk::KeyStore for ForeignKeys {
    fn load(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.load(name.to_owned()).map_err(|e| e.to_string())
    }

    fn save(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        self.0
            .save(name.to_owned(), bytes.to_vec())
            .map_err(|e| e.to_string())
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        self.0.remove(name.to_owned()).map_err(|e| e.to_string())
    }
}

/// The app's clock, as the SDK's.
struct ForeignClock(Arc<dyn PlatformClock>);

impl std::fmt::Debug for ForeignClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForeignClock")
    }
}

impl sdk::MonotonicClock for ForeignClock {
    fn since_boot_ms(&self) -> Option<u64> {
        self.0.since_boot_ms()
    }
}

/// How the engine paces itself.
#[derive(Clone, Debug, uniffi::Record)]
pub struct EngineOptions {
    /// Sync at least this often without a trigger, ms (at least 1,000).
    #[uniffi(default = 300000)]
    pub interval_ms: u64,
    /// First delay after a failed sync, ms; doubles per failure.
    #[uniffi(default = 2000)]
    pub initial_backoff_ms: u64,
    /// Longest delay between retries, ms.
    #[uniffi(default = 300000)]
    pub max_backoff_ms: u64,
    /// Hold a connection open for the server's Notify while in the foreground.
    #[uniffi(default = true)]
    pub listen: bool,
}

/// A running engine. Dropping it stops the engine.
#[derive(uniffi::Object)]
pub struct EngineHandle {
    engine: Mutex<Option<sdk::SyncEngine>>,
}

impl EngineHandle {
    fn with(&self, f: impl FnOnce(&sdk::SyncEngine)) {
        let slot = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(engine) = slot.as_ref() {
            f(engine);
        }
    }
}

#[uniffi::export]
impl EngineHandle {
    /// Sync as soon as possible.
    pub fn sync_now(&self) {
        self.with(sdk::SyncEngine::sync_now);
    }

    /// The app went to the background: no syncs and no idle connection until `resume`.
    pub fn pause(&self) {
        self.with(sdk::SyncEngine::pause);
    }

    /// The app is in the foreground again: sync now and listen for Notify.
    pub fn resume(&self) {
        self.with(sdk::SyncEngine::resume);
    }

    /// The phone moved to another network; sync at once.
    pub fn network_changed(&self, metered: bool) {
        self.with(|e| e.network_changed(metered));
    }

    /// Stops the engine and waits for it; later calls on the handle do nothing.
    pub async fn stop(&self) {
        let engine = self.engine.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(engine) = engine {
            let _ = RUNTIME.spawn(engine.stop()).await;
        }
    }
}

/// The message for `code` in `language` (`zh-CN` or `en`).
#[uniffi::export]
pub fn error_message(code: ErrorCode, language: String) -> String {
    sdk::ErrorCode::from(code).message(&language)
}

fn parse<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, sdk::ErrorCode> {
    value.parse().map_err(|_| sdk::ErrorCode::Invalid {
        field: field.into(),
        reason: "unknown_value".into(),
    })
}

fn task_id(text: &str) -> Result<sdk::proto::TaskId, sdk::ErrorCode> {
    uuid::Uuid::parse_str(text)
        .map(sdk::proto::TaskId)
        .map_err(|_| sdk::ErrorCode::Invalid {
            field: "task_id".into(),
            reason: "invalid_id".into(),
        })
}

fn hazard_id(text: &str, field: &str) -> Result<HazardId, sdk::ErrorCode> {
    uuid::Uuid::parse_str(text)
        .map(HazardId)
        .map_err(|_| sdk::ErrorCode::Invalid {
            field: field.into(),
            reason: "invalid_id".into(),
        })
}

fn photo_hash(text: &str, field: &str) -> Result<[u8; 32], sdk::ErrorCode> {
    hex::decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| sdk::ErrorCode::Invalid {
            field: field.into(),
            reason: "invalid_hash".into(),
        })
}
