//! `fthub deadletters list|replay`.

use fthub::commands::ops::Publisher;
use fthub::commands::runs;

use super::Out;
use super::args::{BusArg, Home, StorageArg, open_store, user_or};

/// `fthub deadletters` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Dead-lettered pipeline messages, with the host's reason, the last error and replays:
    /// the dead-letter book in storage, and what still sits in a local subqueue.
    List {
        /// Only this queue's (`intake`, `training-completed`, `evaluation-completed`,
        /// `approvals`).
        #[arg(long)]
        queue: Option<String>,
        #[command(flatten)]
        home: Home,
        #[command(flatten)]
        storage: StorageArg,
    },
    /// Send dead letters back to their queue as new messages: one by its sequence number
    /// (or book key), or every one not replayed yet.
    Replay {
        /// The message's sequence number or book key.
        key: Option<String>,
        /// Only this queue's.
        #[arg(long)]
        queue: Option<String>,
        /// Who asks (recorded with the replay; default $USER).
        #[arg(long = "as")]
        actor: Option<String>,
        #[command(flatten)]
        home: Home,
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        bus: BusArg,
    },
}

/// Runs one.
pub async fn run(c: Command, out: &Out) -> anyhow::Result<()> {
    let (list, listing) = match c {
        Command::List {
            queue,
            home,
            storage,
        } => {
            let store = open_store(storage.storage.as_deref(), &home.home)?;
            // The local bus only in local mode: against Azure the book is the record.
            let bus = storage
                .storage
                .is_none()
                .then(|| fthub::adapters::local::bus::LocalBus::new(home.home.join("bus")));
            let list = runs::list(store.as_ref(), bus.as_ref(), queue.as_deref()).await?;
            (list, true)
        }
        Command::Replay {
            key,
            queue,
            actor,
            home,
            storage,
            bus,
        } => {
            let store = open_store(storage.storage.as_deref(), &home.home)?;
            let publisher = Publisher::from_setting(bus.bus.as_deref(), &home.home)?;
            let local = match &publisher {
                Publisher::Local(b) => Some(b),
                Publisher::Azure(_) => None,
            };
            let by = actor.unwrap_or_else(|| user_or("operator"));
            let list = match runs::replay(
                store.as_ref(),
                &publisher,
                local,
                queue.as_deref(),
                key.as_deref(),
                &by,
            )
            .await
            {
                Ok(l) => l,
                Err(fthub::commands::ops::OpsError::NotFound(why)) => {
                    return super::no(why);
                }
                Err(e) => return Err(e.into()),
            };
            (list, false)
        }
    };
    out.either(&list, || text(&list, listing));
    Ok(())
}

fn text(list: &[serde_json::Value], listing: bool) -> String {
    if list.is_empty() {
        return if listing {
            "no dead letters\n".into()
        } else {
            "nothing to replay: every dead letter was replayed already (name one to replay it again)\n".into()
        };
    }
    list.iter()
        .map(|d| {
            let replays = d["replays"].as_array().map_or(0, Vec::len);
            format!(
                "{} {} run {} — {}: {}{}\n",
                d["queue"].as_str().unwrap_or(""),
                d["sequence"].as_i64().map_or_else(
                    || d["key"].as_str().unwrap_or("").to_owned(),
                    |n| format!("#{n}")
                ),
                d["run_id"].as_str().unwrap_or("?"),
                d["reason"].as_str().unwrap_or("?"),
                d["description"].as_str().unwrap_or(""),
                if let Some(n) = d.get("replayed_as") {
                    format!(" → replayed as #{n}")
                } else if d["replayed"] == true {
                    " → replayed".to_owned()
                } else if replays > 0 {
                    format!(" (replayed {replays}×)")
                } else {
                    String::new()
                }
            )
        })
        .collect()
}
