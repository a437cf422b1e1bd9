//! `fthub storage`: look into the pipeline's blob storage with the same adapters the
//! handler uses: check access, list, stream a blob out.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::app::settings::CONTAINERS;
use crate::ports::{BlobError, BlobStore, Condition, CustomerKey};

/// What to do.
#[derive(Debug)]
pub enum Action {
    /// List and write in every container.
    Check {
        /// Store.
        store: Arc<dyn BlobStore>,
        /// JSON instead of lines.
        json: bool,
    },
    /// `CONTAINER[/PREFIX]`.
    List {
        /// Store.
        store: Arc<dyn BlobStore>,
        /// Container and prefix.
        path: String,
        /// JSON instead of a table.
        json: bool,
    },
    /// Stream `CONTAINER/NAME` out.
    Get {
        /// Store.
        store: Arc<dyn BlobStore>,
        /// Container and name.
        path: String,
        /// Output file, else stdout.
        output: Option<PathBuf>,
        /// Customer-provided key file (base64).
        key_file: Option<PathBuf>,
    },
}

/// Failures, each naming what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StorageCmdError {
    /// Storage.
    #[error(transparent)]
    Store(#[from] BlobError),
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// Local files.
    #[error("{what}: {source}")]
    Io {
        /// What.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
}

fn split(path: &str) -> (&str, &str) {
    path.split_once('/').unwrap_or((path, ""))
}

/// Peak resident memory of this process in KiB (Linux), for the bounded-memory claim.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs one action.
///
/// # Errors
/// Storage failures (a 403 names the role to assign), bad paths, local I/O.
pub async fn run(action: Action) -> Result<(), StorageCmdError> {
    match action {
        Action::Check { store, json } => {
            let mut checked = Vec::new();
            for c in CONTAINERS {
                let n = store.list(c, "").await?.len();
                let probe = format!(".fthub-check/{}", uuid::Uuid::new_v4());
                store
                    .put(c, &probe, b"probe", Condition::IfNotExists)
                    .await?;
                store.delete(c, &probe, Condition::None).await?;
                if !json {
                    crate::commands::outln!("ok  {c:<10} list ({n} blobs), write, delete");
                }
                checked.push(serde_json::json!({"container": c, "blobs": n, "list": true, "write": true, "delete": true}));
            }
            if json {
                crate::commands::outln!(
                    "{}",
                    serde_json::to_string_pretty(&checked).unwrap_or_default()
                );
            }
            Ok(())
        }
        Action::List { store, path, json } => {
            let (container, prefix) = split(&path);
            let blobs = store.list(container, prefix).await?;
            if json {
                let v: Vec<_> = blobs
                    .iter()
                    .map(|p| serde_json::json!({"name": p.name, "bytes": p.content_length, "etag": p.etag, "last_modified": p.last_modified}))
                    .collect();
                crate::commands::outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                return Ok(());
            }
            for p in blobs {
                crate::commands::outln!(
                    "{:>12}  {}  {}",
                    p.content_length,
                    p.last_modified.format("%Y-%m-%d %H:%M:%S"),
                    p.name
                );
            }
            Ok(())
        }
        Action::Get {
            store,
            path,
            output,
            key_file,
        } => {
            let (container, name) = split(&path);
            if name.is_empty() {
                return Err(StorageCmdError::Usage(
                    "name a blob as CONTAINER/NAME".into(),
                ));
            }
            let (_, mut reader) = match &key_file {
                Some(f) => {
                    let text =
                        std::fs::read_to_string(f).map_err(|source| StorageCmdError::Io {
                            what: format!("reading {}", f.display()),
                            source,
                        })?;
                    let key = CustomerKey::from_base64(&text)
                        .map_err(|e| StorageCmdError::Usage(format!("{}: {e}", f.display())))?;
                    store.open_with_key(container, name, &key).await?
                }
                None => store.open(container, name).await?,
            };
            let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = match &output {
                Some(p) => Box::new(tokio::fs::File::create(p).await.map_err(|source| {
                    StorageCmdError::Io {
                        what: format!("creating {}", p.display()),
                        source,
                    }
                })?),
                None => Box::new(tokio::io::stdout()),
            };
            let io = |source| StorageCmdError::Io {
                what: format!("copying {path}"),
                source,
            };
            let mut hasher = sha2::Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut total: u64 = 0;
            loop {
                let n = reader.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                match out.write_all(&buf[..n]).await {
                    // `fthub storage get … | head`: the reader has what it wanted.
                    Err(e) if output.is_none() && e.kind() == std::io::ErrorKind::BrokenPipe => {
                        std::process::exit(0)
                    }
                    r => r.map_err(io)?,
                }
                total += n as u64;
            }
            out.flush().await.map_err(io)?;
            let digest: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let rss = peak_rss_kib().map_or_else(String::new, |k| format!(" peak_rss_kib={k}"));
            crate::errln!("bytes={total} sha256={digest}{rss}");
            Ok(())
        }
    }
}
