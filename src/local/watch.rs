//! The mark `fthub dev` leaves in its home while it runs (`dev.json`): which process
//! watches the directory, at which URL, on which store. `fthub submit` reads it so a
//! submission never lands in a directory no host watches.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name under the home directory.
pub const FILE: &str = "dev.json";

/// A running host's mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    /// The host's process id.
    pub pid: u32,
    /// Base URL of its HTTP triggers (`http://127.0.0.1:PORT`; the routes are under the
    /// host's route prefix).
    pub url: String,
    /// The dashboard's URL.
    pub dashboard: String,
    /// Whether it watches the local store under the home directory (not Azurite or Azure).
    pub local_store: bool,
}

impl Watch {
    /// Writes the mark; it is removed when the returned guard drops.
    ///
    /// # Errors
    /// When the home directory cannot be written.
    pub fn write(&self, home: &Path) -> std::io::Result<Guard> {
        let path = home.join(FILE);
        std::fs::write(&path, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        Ok(Guard {
            path,
            pid: self.pid,
        })
    }

    /// The mark in `home`, if a host that is still alive left it.
    pub fn find(home: &Path) -> Option<Self> {
        let bytes = std::fs::read(home.join(FILE)).ok()?;
        let w: Self = serde_json::from_slice(&bytes).ok()?;
        alive(w.pid).then_some(w)
    }
}

/// Removes the mark when the host stops — unless another host on the same home has
/// written its own since.
#[derive(Debug)]
pub struct Guard {
    path: PathBuf,
    pid: u32,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let ours = std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Watch>(&b).ok())
            .is_some_and(|w| w.pid == self.pid);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether a process lives (a mark left by a killed host must not count).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        // Elsewhere the mark is trusted; a stale one only skips the check.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_counts_while_its_process_lives_and_goes_with_its_guard() {
        let home = tempfile::tempdir().expect("home");
        let w = Watch {
            pid: std::process::id(),
            url: "http://127.0.0.1:1/api".into(),
            dashboard: "http://127.0.0.1:1/api/status/ui".into(),
            local_store: true,
        };
        let guard = w.write(home.path()).expect("write");
        assert_eq!(Watch::find(home.path()), Some(w.clone()));
        drop(guard);
        assert_eq!(Watch::find(home.path()), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_mark_left_by_a_dead_process_does_not_count() {
        let home = tempfile::tempdir().expect("home");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        let w = Watch {
            pid,
            url: String::new(),
            dashboard: String::new(),
            local_store: true,
        };
        std::mem::forget(w.write(home.path()).expect("write"));
        assert_eq!(Watch::find(home.path()), None);
    }
}
