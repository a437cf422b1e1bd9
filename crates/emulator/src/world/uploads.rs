//! The Uploads API for large files: start (declaring the size), parts, complete (the parts
//! in order, by part id or Azure block id), cancel. Uploads expire two hours after they
//! start (azure-rest-api-specs, `UploadFile_Start`, 2024-10-21).

use super::*;

/// How long an upload may take.
const UPLOAD_LIFETIME_HOURS: i64 = 2;

/// One large-file upload.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Id.
    pub id: String,
    /// Name the file will have.
    pub filename: String,
    /// Purpose the file will have.
    pub purpose: String,
    /// Declared size: the parts must add up to it.
    pub bytes: u64,
    /// Started.
    pub created: DateTime<Utc>,
    /// `pending`, `completed`, `cancelled` (and `expired` when read after its lifetime).
    pub status: String,
    /// Parts received: (part id, block id, content).
    pub parts: Vec<(String, String, Vec<u8>)>,
    /// The file made on completion.
    pub file_id: Option<String>,
}

impl World {
    /// Starts an upload.
    pub fn start_upload(&mut self, account: &str, body: &Value) -> Result<Value, Refusal> {
        let now = self.now();
        let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(filename), Some(purpose), Some(_mime), Some(bytes)) = (
            s("filename"),
            s("purpose"),
            s("mime_type"),
            body.get("bytes").and_then(Value::as_u64),
        ) else {
            return Err(refuse(
                400,
                "invalidPayload",
                "purpose, filename, bytes and mime_type are required",
            ));
        };
        if bytes > MAX_FILE_BYTES as u64 {
            return Err(refuse(
                400,
                "fileTooLarge",
                format!(
                    "a {purpose} file is at most {MAX_FILE_BYTES} bytes; this upload declares {bytes}"
                ),
            ));
        }
        let id = format!("upload-{}", hex_id());
        let a = self.account_mut(account)?;
        a.uploads.insert(
            id.clone(),
            Upload {
                id: id.clone(),
                filename,
                purpose,
                bytes,
                created: now,
                status: "pending".into(),
                parts: Vec::new(),
                file_id: None,
            },
        );
        self.upload_json(account, &id)
            .ok_or_else(|| refuse(500, "internal", "upload vanished"))
    }

    /// Adds a part.
    pub fn add_part(&mut self, account: &str, id: &str, data: Vec<u8>) -> Result<Value, Refusal> {
        let now = self.now();
        let u = self.pending_upload(account, id, now)?;
        let received: u64 = u.parts.iter().map(|p| p.2.len() as u64).sum();
        if received + data.len() as u64 > u.bytes {
            return Err(refuse(
                400,
                "invalidPayload",
                format!("the parts would exceed the {} bytes declared", u.bytes),
            ));
        }
        let part = format!("part-{}", hex_id());
        let block = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&uuid::Uuid::new_v4().as_bytes()[..16])
        };
        u.parts.push((part.clone(), block.clone(), data));
        Ok(json!({"id": part, "object": "upload.part", "upload_id": id,
                  "azure_block_id": block, "created_at": now.timestamp()}))
    }

    /// Completes an upload: the listed parts, in order, become a file.
    pub fn complete_upload(
        &mut self,
        account: &str,
        id: &str,
        part_ids: &[String],
    ) -> Result<Value, Refusal> {
        let now = self.now();
        let u = self.pending_upload(account, id, now)?;
        let mut content = Vec::with_capacity(u.bytes as usize);
        for p in part_ids {
            let part = u
                .parts
                .iter()
                .find(|(pid, block, _)| pid == p || block == p)
                .ok_or_else(|| refuse(400, "invalidPayload", format!("unknown part {p}")))?;
            content.extend_from_slice(&part.2);
        }
        if content.len() as u64 != u.bytes {
            return Err(refuse(
                400,
                "invalidPayload",
                format!(
                    "the parts hold {} bytes; the upload declared {}",
                    content.len(),
                    u.bytes
                ),
            ));
        }
        let (filename, purpose) = (u.filename.clone(), u.purpose.clone());
        let file = self.add_file(account, &filename, &purpose, content)?;
        let a = self.account_mut(account)?;
        if let Some(u) = a.uploads.get_mut(id) {
            u.status = "completed".into();
            u.parts.clear();
            u.file_id = file["id"].as_str().map(str::to_owned);
        }
        self.upload_json(account, id)
            .ok_or_else(|| refuse(500, "internal", "upload vanished"))
    }

    /// Cancels an upload.
    pub fn cancel_upload(&mut self, account: &str, id: &str) -> Result<Value, Refusal> {
        let now = self.now();
        let u = self.pending_upload(account, id, now)?;
        u.status = "cancelled".into();
        u.parts.clear();
        self.upload_json(account, id)
            .ok_or_else(|| refuse(500, "internal", "upload vanished"))
    }

    fn pending_upload(
        &mut self,
        account: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<&mut Upload, Refusal> {
        let u = self
            .account_mut(account)?
            .uploads
            .get_mut(id)
            .ok_or_else(|| refuse(404, "notFound", format!("upload {id} not found")))?;
        if u.status == "pending" && now > u.created + Duration::hours(UPLOAD_LIFETIME_HOURS) {
            u.status = "expired".into();
            u.parts.clear();
        }
        if u.status != "pending" {
            return Err(refuse(
                400,
                "invalidUploadState",
                format!("upload {id} is {}", u.status),
            ));
        }
        Ok(u)
    }

    /// An upload's JSON, with its file once completed.
    pub fn upload_json(&self, account: &str, id: &str) -> Option<Value> {
        let u = self.accounts.get(account)?.uploads.get(id)?;
        let file = u
            .file_id
            .as_ref()
            .and_then(|f| self.file_json(account, f))
            .unwrap_or(Value::Null);
        Some(json!({
            "id": u.id, "object": "upload", "bytes": u.bytes, "filename": u.filename,
            "purpose": u.purpose, "status": u.status, "created_at": u.created.timestamp(),
            "expires_at": (u.created + Duration::hours(UPLOAD_LIFETIME_HOURS)).timestamp(),
            "file": file,
        }))
    }
}
