//! Local adapters: a filesystem blob store and a durable filesystem message bus, both
//! safe to share between processes (`fthub dev` and the handler it starts).

pub mod blob;
pub mod bus;

use std::fs::File;
use std::path::Path;

/// Runs `f` while holding an exclusive advisory lock on `lock_path` (created if needed).
/// Both the dev host and the handler process mutate the same files, so every
/// read-modify-write on shared state happens under one of these.
pub(crate) fn with_file_lock<T>(
    lock_path: &Path,
    f: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<T> {
    if let Some(dir) = lock_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path)?;
    file.lock()?;
    let out = f();
    file.unlock()?;
    out
}
