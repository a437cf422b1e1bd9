//! A blob store on the local filesystem: `{root}/{container}/{blob name}`.
//!
//! Dropping a file into `{root}/datasets/...` is a blob upload, so ETags are derived from
//! file metadata rather than kept in a side file. Writes go through a temporary file and
//! a rename, so a reader never sees half a blob; the store stamps every write with a
//! strictly increasing modification time so two writes never share an ETag. Conditional
//! writes take a per-container lock file, so concurrent writers in different processes
//! get exactly one winner.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::with_file_lock;
use crate::domain::blob_name;
use crate::ports::{
    BlobError, BlobProperties, BlobReader, BlobStore, Condition, ETag, LeaseId, check_names,
};

/// The filesystem store.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// A store rooted at `root` (created lazily on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory that holds the containers.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, container: &str, name: &str) -> Result<PathBuf, BlobError> {
        check_names(container, name)?;
        let mut p = self.root.join(container);
        for seg in name.split('/') {
            p.push(seg);
        }
        Ok(p)
    }

    fn lock_path(&self, container: &str) -> PathBuf {
        self.root.join(".locks").join(format!("{container}.lock"))
    }

    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BlobError {
        let what = what.into();
        move |source| BlobError::Io { what, source }
    }
}

fn not_found(container: &str, name: &str) -> BlobError {
    BlobError::NotFound {
        container: container.to_owned(),
        name: name.to_owned(),
    }
}

fn mtime_nanos(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.ino()
}
#[cfg(not(unix))]
fn file_id(meta: &std::fs::Metadata) -> u64 {
    meta.len()
}

/// The ETag of a file: its modification time (ns) and file id, Azure-style hex.
fn etag_of(meta: &std::fs::Metadata) -> ETag {
    ETag(format!(
        "0x{:X}{:08X}",
        mtime_nanos(meta),
        file_id(meta) & 0xFFFF_FFFF
    ))
}

fn props(container: &str, name: &str, meta: &std::fs::Metadata) -> BlobProperties {
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    BlobProperties {
        container: container.to_owned(),
        name: name.to_owned(),
        etag: etag_of(meta),
        content_length: meta.len(),
        last_modified: DateTime::<Utc>::from(modified),
    }
}

fn stat(path: &Path, container: &str, name: &str) -> Result<Option<BlobProperties>, BlobError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(props(container, name, &m))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
            Ok(None)
        }
        Err(e) => Err(BlobError::Io {
            what: format!("stat {container}/{name}"),
            source: e,
        }),
    }
}

fn check_condition(
    current: Option<&BlobProperties>,
    condition: &Condition,
    container: &str,
    name: &str,
) -> Result<(), BlobError> {
    match (condition, current) {
        (Condition::None, _) => Ok(()),
        (Condition::IfNotExists, None) => Ok(()),
        (Condition::IfNotExists, Some(_)) => Err(BlobError::AlreadyExists {
            container: container.to_owned(),
            name: name.to_owned(),
        }),
        (Condition::IfMatch(_), None) => Err(not_found(container, name)),
        (Condition::IfMatch(want), Some(p)) if &p.etag == want => Ok(()),
        (Condition::IfMatch(_), Some(_)) => Err(BlobError::PreconditionFailed {
            container: container.to_owned(),
            name: name.to_owned(),
        }),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(BlobError::Io {
            what: "blocking storage task".into(),
            source: std::io::Error::other(e),
        }),
    }
}

impl FsBlobStore {
    /// Synchronous conditional write, shared by the async port and the dev host's
    /// bookkeeping.
    pub fn put_sync(
        &self,
        container: &str,
        name: &str,
        bytes: &[u8],
        condition: &Condition,
    ) -> Result<BlobProperties, BlobError> {
        self.put_with(container, name, condition, |tmp| std::fs::write(tmp, bytes))
    }

    /// A conditional write whose content `fill` puts into a temporary file (bytes, or a
    /// copy of a local file), then renamed into place under the container lock.
    fn put_with(
        &self,
        container: &str,
        name: &str,
        condition: &Condition,
        fill: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<BlobProperties, BlobError> {
        let path = self.path(container, name)?;
        let tmp_dir = self.root.join(".tmp");
        let lock = self.lock_path(container);
        let outcome = with_file_lock(&lock, || {
            let current = match stat(&path, container, name) {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            if let Err(e) = check_condition(current.as_ref(), condition, container, name) {
                return Ok(Err(e));
            }
            std::fs::create_dir_all(&tmp_dir)?;
            let tmp = tmp_dir.join(uuid::Uuid::new_v4().to_string());
            fill(&tmp)?;
            // Strictly increasing mtime per blob: the ETag must change on every write,
            // even two writes within one clock tick.
            let now = SystemTime::now();
            let stamp = match &current {
                Some(p) => {
                    let prev = SystemTime::from(p.last_modified) + Duration::from_micros(1);
                    prev.max(now)
                }
                None => now,
            };
            std::fs::File::options()
                .write(true)
                .open(&tmp)?
                .set_modified(stamp)?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&tmp, &path)?;
            let meta = std::fs::metadata(&path)?;
            Ok(Ok(props(container, name, &meta)))
        });
        outcome.map_err(Self::io(format!("write {container}/{name}")))?
    }

    fn list_sync(&self, container: &str, prefix: &str) -> Result<Vec<BlobProperties>, BlobError> {
        blob_name::check_container(container).map_err(|reason| BlobError::InvalidName {
            name: container.to_owned(),
            reason,
        })?;
        let base = self.root.join(container);
        let mut out = Vec::new();
        let mut stack = vec![(base.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(BlobError::Io {
                        what: format!("list {container}"),
                        source: e,
                    });
                }
            };
            for entry in entries {
                let entry = entry.map_err(Self::io(format!("list {container}")))?;
                let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let name = if rel.is_empty() {
                    file_name
                } else {
                    format!("{rel}/{file_name}")
                };
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    // Only descend where the prefix can still match.
                    if name.starts_with(prefix) || prefix.starts_with(&format!("{name}/")) {
                        stack.push((entry.path(), name));
                    }
                } else if meta.is_file()
                    && name.starts_with(prefix)
                    && blob_name::check_blob(&name).is_ok()
                {
                    out.push(props(container, &name, &meta));
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete_sync(
        &self,
        container: &str,
        name: &str,
        condition: &Condition,
    ) -> Result<bool, BlobError> {
        let path = self.path(container, name)?;
        let base = self.root.join(container);
        let lock = self.lock_path(container);
        let outcome = with_file_lock(&lock, || {
            let current = match stat(&path, container, name) {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            if current.is_none() && !matches!(condition, Condition::IfMatch(_)) {
                return Ok(Ok(false));
            }
            if let Err(e) = check_condition(current.as_ref(), condition, container, name) {
                return Ok(Err(e));
            }
            std::fs::remove_file(&path)?;
            // Prune emptied directories so listings and the dashboard stay clean.
            let mut dir = path.parent().map(Path::to_path_buf);
            while let Some(d) = dir {
                if d == base || std::fs::remove_dir(&d).is_err() {
                    break;
                }
                dir = d.parent().map(Path::to_path_buf);
            }
            Ok(Ok(true))
        });
        outcome.map_err(Self::io(format!("delete {container}/{name}")))?
    }
}

/// A lease as the filesystem store records it beside the container.
#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseRecord {
    id: String,
    until_ms: i64,
    duration_ms: i64,
}

impl FsBlobStore {
    fn lease_path(&self, container: &str, name: &str) -> Result<PathBuf, BlobError> {
        self.path(container, name)?;
        let mut p = self.root.join(".leases").join(container);
        for seg in name.split('/') {
            p.push(seg);
        }
        p.set_extension(match p.extension() {
            Some(e) => format!("{}.lease", e.to_string_lossy()),
            None => "lease".into(),
        });
        Ok(p)
    }

    /// Runs `f` on the current lease record under the container lock, as Azure's lease
    /// state machine: `f` returns the record to store (or `None` to clear) and a result.
    fn with_lease<T>(
        &self,
        container: &str,
        name: &str,
        f: impl FnOnce(Option<LeaseRecord>, i64) -> (Option<LeaseRecord>, Result<T, BlobError>),
    ) -> Result<T, BlobError> {
        let blob = self.path(container, name)?;
        let path = self.lease_path(container, name)?;
        let lock = self.lock_path(container);
        let outcome = with_file_lock(&lock, || {
            if stat(&blob, container, name).ok().flatten().is_none() {
                return Ok(Err(not_found(container, name)));
            }
            let current = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<LeaseRecord>(&b).ok());
            let (next, result) = f(current, Utc::now().timestamp_millis());
            match next {
                Some(r) => {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::write(&path, serde_json::to_vec(&r).unwrap_or_default())?;
                }
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                    _ => {}
                },
            }
            Ok(result)
        });
        outcome.map_err(Self::io(format!("lease {container}/{name}")))?
    }
}

fn leased(container: &str, name: &str) -> BlobError {
    BlobError::Leased {
        container: container.to_owned(),
        name: name.to_owned(),
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn get(
        &self,
        container: &str,
        name: &str,
    ) -> Result<(BlobProperties, Vec<u8>), BlobError> {
        let path = self.path(container, name)?;
        let (c, n) = (container.to_owned(), name.to_owned());
        blocking(move || {
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e)
                    if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory =>
                {
                    return Err(not_found(&c, &n));
                }
                Err(e) => {
                    return Err(BlobError::Io {
                        what: format!("read {c}/{n}"),
                        source: e,
                    });
                }
            };
            let meta = file
                .metadata()
                .map_err(FsBlobStore::io(format!("read {c}/{n}")))?;
            if !meta.is_file() {
                return Err(not_found(&c, &n));
            }
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            std::io::Read::read_to_end(&mut &file, &mut bytes)
                .map_err(FsBlobStore::io(format!("read {c}/{n}")))?;
            Ok((props(&c, &n, &meta), bytes))
        })
        .await
    }

    async fn open(
        &self,
        container: &str,
        name: &str,
    ) -> Result<(BlobProperties, BlobReader), BlobError> {
        let path = self.path(container, name)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
                return Err(not_found(container, name));
            }
            Err(e) => {
                return Err(BlobError::Io {
                    what: format!("open {container}/{name}"),
                    source: e,
                });
            }
        };
        let meta = file
            .metadata()
            .await
            .map_err(Self::io(format!("open {container}/{name}")))?;
        if !meta.is_file() {
            return Err(not_found(container, name));
        }
        Ok((
            props(container, name, &meta),
            Box::pin(tokio::io::BufReader::with_capacity(1 << 20, file)),
        ))
    }

    async fn properties(&self, container: &str, name: &str) -> Result<BlobProperties, BlobError> {
        let path = self.path(container, name)?;
        let (c, n) = (container.to_owned(), name.to_owned());
        blocking(move || stat(&path, &c, &n)?.ok_or_else(|| not_found(&c, &n))).await
    }

    async fn put(
        &self,
        container: &str,
        name: &str,
        bytes: &[u8],
        condition: Condition,
    ) -> Result<BlobProperties, BlobError> {
        let (me, c, n, b) = (
            self.clone(),
            container.to_owned(),
            name.to_owned(),
            bytes.to_vec(),
        );
        blocking(move || me.put_sync(&c, &n, &b, &condition)).await
    }

    async fn list(&self, container: &str, prefix: &str) -> Result<Vec<BlobProperties>, BlobError> {
        let (me, c, p) = (self.clone(), container.to_owned(), prefix.to_owned());
        blocking(move || me.list_sync(&c, &p)).await
    }

    async fn delete(
        &self,
        container: &str,
        name: &str,
        condition: Condition,
    ) -> Result<bool, BlobError> {
        let (me, c, n) = (self.clone(), container.to_owned(), name.to_owned());
        blocking(move || me.delete_sync(&c, &n, &condition)).await
    }

    async fn put_file(
        &self,
        container: &str,
        name: &str,
        file: &Path,
        condition: Condition,
    ) -> Result<BlobProperties, BlobError> {
        let (me, c, n, f) = (
            self.clone(),
            container.to_owned(),
            name.to_owned(),
            file.to_owned(),
        );
        blocking(move || me.put_with(&c, &n, &condition, |tmp| std::fs::copy(&f, tmp).map(|_| ())))
            .await
    }

    async fn ensure_container(&self, container: &str) -> Result<(), BlobError> {
        blob_name::check_container(container).map_err(|reason| BlobError::InvalidName {
            name: container.to_owned(),
            reason,
        })?;
        tokio::fs::create_dir_all(self.root.join(container))
            .await
            .map_err(Self::io(format!("create container {container}")))
    }

    async fn acquire_lease(
        &self,
        container: &str,
        name: &str,
        seconds: u32,
    ) -> Result<Option<LeaseId>, BlobError> {
        let (me, c, n) = (self.clone(), container.to_owned(), name.to_owned());
        let ms = i64::from(seconds) * 1000;
        blocking(move || {
            me.with_lease(&c, &n, |current, now| match current {
                Some(r) if r.until_ms > now => (Some(r), Ok(None)),
                _ => {
                    let id = uuid::Uuid::new_v4().to_string();
                    let rec = LeaseRecord {
                        id: id.clone(),
                        until_ms: now + ms,
                        duration_ms: ms,
                    };
                    (Some(rec), Ok(Some(LeaseId(id))))
                }
            })
        })
        .await
    }

    async fn renew_lease(
        &self,
        container: &str,
        name: &str,
        lease: &LeaseId,
    ) -> Result<(), BlobError> {
        let (me, c, n, id) = (
            self.clone(),
            container.to_owned(),
            name.to_owned(),
            lease.0.clone(),
        );
        blocking(move || {
            me.with_lease(&c, &n, |current, now| match current {
                // Azure renews an expired lease too, as long as nobody took it since.
                Some(r) if r.id == id => {
                    let rec = LeaseRecord {
                        until_ms: now + r.duration_ms,
                        ..r
                    };
                    (Some(rec), Ok(()))
                }
                other => (other, Err(leased(&c, &n))),
            })
        })
        .await
    }

    async fn release_lease(
        &self,
        container: &str,
        name: &str,
        lease: &LeaseId,
    ) -> Result<(), BlobError> {
        let (me, c, n, id) = (
            self.clone(),
            container.to_owned(),
            name.to_owned(),
            lease.0.clone(),
        );
        blocking(move || {
            me.with_lease(&c, &n, |current, _| match current {
                Some(r) if r.id == id => (None, Ok(())),
                other => (other, Err(leased(&c, &n))),
            })
        })
        .await
    }
}
