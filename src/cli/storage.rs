//! `fthub storage check|ls|get`.

use std::path::PathBuf;

use super::Out;
use super::args::{Home, StorageArg, open_store};

/// `fthub storage` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check that the store answers and this identity may read and write each container.
    Check {
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        home: Home,
    },
    /// List blobs: `CONTAINER[/PREFIX]`.
    Ls {
        /// Container and optional prefix.
        path: String,
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        home: Home,
    },
    /// Stream a blob to a file or stdout (bounded memory); prints its size and SHA-256 to
    /// stderr.
    Get {
        /// `CONTAINER/NAME`.
        path: String,
        /// Output file (default stdout).
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
        /// Base64 AES-256 key file, for a blob stored with a customer-provided key.
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[command(flatten)]
        storage: StorageArg,
        #[command(flatten)]
        home: Home,
    },
}

/// Runs one.
pub async fn run(c: Command, out: &Out) -> anyhow::Result<()> {
    use fthub::commands::storage::{Action, StorageCmdError};
    let action = match c {
        Command::Check { storage, home } => Action::Check {
            store: open_store(storage.storage.as_deref(), &home.home)?,
            json: out.json(),
        },
        Command::Ls {
            path,
            storage,
            home,
        } => Action::List {
            store: open_store(storage.storage.as_deref(), &home.home)?,
            path,
            json: out.json(),
        },
        Command::Get {
            path,
            out: output,
            key_file,
            storage,
            home,
        } => Action::Get {
            store: open_store(storage.storage.as_deref(), &home.home)?,
            path,
            output,
            key_file,
        },
    };
    match fthub::commands::storage::run(action).await {
        Ok(()) => Ok(()),
        Err(StorageCmdError::Store(e @ fthub::ports::BlobError::NotFound { .. })) => {
            super::no(e.to_string())
        }
        Err(e) => Err(e.into()),
    }
}
