//! Large datasets through the Uploads API (start → parts → complete), which Learn advises
//! for big files ("Large files can become unstable when you upload them through multipart
//! forms because the requests are atomic and can't be retried or resumed"). Each part is
//! read once from the blob and kept until Azure has it, so a failed part is resent on its
//! own; memory stays at one part. The v1 spec has no Uploads API: there, files go whole.

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;

use super::{DataPlane, MAX_RESENDS};
use crate::domain::aoai::FileObject;
use crate::ports::{AoaiError, BlobStore, Hub as _};

/// Datasets larger than this go through the Uploads API (on dated surfaces).
pub const LARGE_FILE_BYTES: u64 = 100 * 1024 * 1024;
/// Size of each part (Azure allows up to the purpose's file limit per part; OpenAI 64 MB).
pub const PART_BYTES: usize = 32 * 1024 * 1024;

fn decode(operation: &str, detail: impl ToString) -> AoaiError {
    AoaiError::Decode {
        operation: operation.to_owned(),
        detail: detail.to_string(),
    }
}

impl DataPlane {
    /// Sets when the Uploads API is used, and the part size (tests use small ones).
    pub fn with_large_files(mut self, threshold: u64, part_bytes: usize) -> Self {
        self.large_file_bytes = threshold;
        self.part_bytes = part_bytes.max(1);
        self
    }

    /// Uploads `size` bytes of a blob in parts; the file is made on completion.
    pub(super) async fn upload_in_parts(
        &self,
        filename: &str,
        store: &dyn BlobStore,
        container: &str,
        name: &str,
        size: u64,
    ) -> Result<FileObject, AoaiError> {
        // An upload nobody completes expires after two hours: starting is safe to repeat.
        let start = json!({"purpose": "fine-tune", "filename": filename, "bytes": size,
                           "mime_type": "application/jsonl"});
        let upload: Value = self
            .http
            .json("start upload", || async {
                Ok(self
                    .request(reqwest::Method::POST, "uploads", &[])
                    .await?
                    .json(&start))
            })
            .await?;
        let id = upload["id"]
            .as_str()
            .ok_or_else(|| decode("start upload", "no upload id"))?
            .to_owned();
        match self.send_parts(&id, filename, store, container, name).await {
            Ok(parts) => self.complete(&id, filename, parts).await,
            Err(e) => {
                // Best effort: a dangling upload would expire anyway.
                let path = format!("uploads/{id}/cancel");
                let _ = self
                    .http
                    .send("cancel upload", || async {
                        self.request(reqwest::Method::POST, &path, &[]).await
                    })
                    .await;
                Err(e)
            }
        }
    }

    async fn send_parts(
        &self,
        id: &str,
        filename: &str,
        store: &dyn BlobStore,
        container: &str,
        name: &str,
    ) -> Result<Vec<String>, AoaiError> {
        let (_, mut reader) = store.open(container, name).await?;
        let path = format!("uploads/{id}/parts");
        let mut parts = Vec::new();
        loop {
            let mut buf = Vec::with_capacity(self.part_bytes);
            (&mut reader)
                .take(self.part_bytes as u64)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| decode("read dataset", e))?;
            if buf.is_empty() {
                break;
            }
            let chunk = Bytes::from(buf);
            // Resending a part makes another part; only the listed ones are assembled.
            let part: Value = self
                .http
                .json("upload part", || async {
                    let data = reqwest::multipart::Part::stream_with_length(
                        reqwest::Body::from(chunk.clone()),
                        chunk.len() as u64,
                    )
                    .file_name(filename.to_owned());
                    let form = reqwest::multipart::Form::new().part("data", data);
                    Ok(self
                        .request(reqwest::Method::POST, &path, &[])
                        .await?
                        .multipart(form))
                })
                .await?;
            let part_id = part["id"]
                .as_str()
                .ok_or_else(|| decode("upload part", "no part id"))?;
            parts.push(part_id.to_owned());
        }
        Ok(parts)
    }

    /// Completing makes the file: a create, looked for by name when its answer is lost.
    async fn complete(
        &self,
        id: &str,
        filename: &str,
        parts: Vec<String>,
    ) -> Result<FileObject, AoaiError> {
        let path = format!("uploads/{id}/complete");
        let body = json!({"part_ids": parts});
        let mut resends = 0;
        loop {
            let done: Result<Value, AoaiError> = self
                .http
                .json_once("complete upload", || async {
                    Ok(self
                        .request(reqwest::Method::POST, &path, &[])
                        .await?
                        .json(&body))
                })
                .await;
            match done {
                Ok(u) => {
                    return serde_json::from_value(u["file"].clone())
                        .map_err(|e| decode("complete upload", e));
                }
                Err(e) if e.may_have_taken_effect() && resends < MAX_RESENDS => {
                    if let Some(f) = self.find_file(filename).await? {
                        return Ok(f);
                    }
                    resends += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
