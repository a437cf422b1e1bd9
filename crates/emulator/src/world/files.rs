//! Files: upload, import, processing, listing.

use super::*;

impl World {
    /// Stores an uploaded or imported file.
    pub fn add_file(
        &mut self,
        account: &str,
        filename: &str,
        purpose: &str,
        bytes: Vec<u8>,
    ) -> Result<Value, Refusal> {
        let now = self.now();
        let a = self.account_mut(account)?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(refuse(
                413,
                "fileTooLarge",
                "files for fine-tuning are at most 512 MB",
            ));
        }
        let total: usize = a.files.values().map(|f| f.bytes.len()).sum();
        if a.files.len() >= MAX_FILES || total + bytes.len() > MAX_TOTAL_BYTES {
            return Err(refuse(
                400,
                "quotaExceeded",
                "a resource holds at most 50 files and 1 GB of fine-tuning files",
            ));
        }
        let problem = if purpose == "fine-tune" {
            training::jsonl_problem(&bytes)
        } else {
            None
        };
        let f = File {
            id: format!("file-{}", hex_id()),
            filename: filename.into(),
            purpose: purpose.into(),
            bytes,
            created: now,
            problem,
        };
        let id = f.id.clone();
        a.files.insert(id.clone(), f);
        Ok(self.file_json(account, &id).unwrap_or(Value::Null))
    }

    /// A file's JSON.
    pub fn file_json(&self, account: &str, id: &str) -> Option<Value> {
        let f = self.accounts.get(account)?.files.get(id)?;
        let now = self.now();
        let done = f.created + Self::ms(self.timings.file_processing_ms);
        let (status, details) = if now >= done {
            match &f.problem {
                Some(p) => ("error", Some(format!("jsonlValidationFailed: {p}"))),
                None => ("processed", None),
            }
        } else if now >= f.created + Self::ms(self.timings.file_processing_ms / 2) {
            ("running", None)
        } else {
            ("pending", None)
        };
        Some(
            json!({"object": "file", "id": f.id, "purpose": f.purpose, "filename": f.filename, "bytes": f.bytes.len(),
                    "created_at": f.created.timestamp(), "status": status, "status_details": details}),
        )
    }

    /// Files newest first (or oldest, `ascending`), of one purpose if given, paged by
    /// `after` (a file id) and `limit` (up to 10,000, the v1 surface's bound).
    pub fn files_page(
        &self,
        account: &str,
        purpose: Option<&str>,
        after: Option<&str>,
        limit: usize,
        ascending: bool,
    ) -> Option<Value> {
        let a = self.accounts.get(account)?;
        let mut files: Vec<&File> = a
            .files
            .values()
            .filter(|f| purpose.is_none_or(|p| f.purpose == p))
            .collect();
        files.sort_by(|x, y| (x.created, &x.id).cmp(&(y.created, &y.id)));
        if !ascending {
            files.reverse();
        }
        let items = files
            .iter()
            .filter_map(|f| self.file_json(account, &f.id))
            .collect();
        let mut v = page(items, after, limit, 10_000);
        let ids = |i: usize| v["data"].get(i).and_then(|f| f.get("id")).cloned();
        let (first, last) = (
            ids(0),
            v["data"]
                .as_array()
                .and_then(|d| d.len().checked_sub(1))
                .and_then(ids),
        );
        v["first_id"] = first.unwrap_or(Value::Null);
        v["last_id"] = last.unwrap_or(Value::Null);
        Some(v)
    }

    /// A file's content.
    pub fn file_content(&self, account: &str, id: &str) -> Option<Vec<u8>> {
        Some(self.accounts.get(account)?.files.get(id)?.bytes.clone())
    }
}
