//! The smallest app on the SDK: open the store, enroll once, run the engine, hear what it
//! does, record a check-in and show the status.
//!
//! ```sh
//! cargo run -p patrolsync-sdk --example minimal_app -- ./phone "patrolsync://…" S1-C1-K1-B1-P1
//! ```

use patrolsync_sdk::proto::CheckInOutcome;
use patrolsync_sdk::{Client, ClientConfig, EngineOptions, NewCheckIn, SyncEvent};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(state_dir), Some(code), Some(checkpoint)) = (args.next(), args.next(), args.next())
    else {
        eprintln!("usage: minimal_app STATE_DIR ENROLLMENT_CODE CHECKPOINT");
        std::process::exit(2);
    };

    let client = Client::open(&state_dir, ClientConfig::default()).await?;
    if client.status().await?.device_id.is_none() {
        let e = client.enroll(&code, None, "minimal app").await?;
        println!(
            "enrolled as {} for {}",
            e.device_id,
            e.grid_cells.join(", ")
        );
    }

    // What an app's status line shows, as it changes.
    let mut state = client.state();
    tokio::spawn(async move {
        while state.changed().await.is_ok() {
            let s = state.borrow_and_update().clone();
            println!("state: {:?} {:?}", s.connectivity, s.phase);
        }
    });

    let engine = client.start_engine(EngineOptions::default());
    let mut events = engine.subscribe();

    // Recording never waits on the network; the engine sends it.
    let id = client
        .record_checkin(NewCheckIn::new(checkpoint, CheckInOutcome::Inspected))
        .await?;
    println!("recorded check-in {id}");

    loop {
        match events.recv().await? {
            SyncEvent::Finished(summary) => {
                println!(
                    "synced: {} applied, {} waiting",
                    summary.applied, summary.remaining
                );
                break;
            }
            SyncEvent::Failed { code, .. } => {
                // The message in the patroller's language; the code to branch on.
                println!("sync failed ({}): {}", code.code(), code.message("zh-CN"));
                break;
            }
            _ => {}
        }
    }
    let status = client.status().await?;
    println!("{} records waiting", status.pending_ops);
    engine.stop().await;
    Ok(())
}
