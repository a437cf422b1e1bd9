//! The Azure OpenAI data plane of one account: files, fine-tuning jobs, events,
//! checkpoints, and chat completions — on the dated surface (`/openai/...?api-version=`)
//! or on `/openai/v1/...`.

use std::time::Instant;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Auth, COGNITIVE_SCOPE, Http};
use crate::domain::aoai::{
    ChatRequest, ChatResult, Checkpoint, CreateJob, FileObject, Job, JobEvent, ModelInfo, Page,
    TrainingMethod, Usage, uses_max_completion_tokens,
};
use crate::ports::{AoaiError, BlobStore, Hub, Inference};

/// The GA dated API version.
pub const GA_API_VERSION: &str = "2024-10-21";
/// The dated api-version used for o-series chat (see [`DataPlane`]).
pub const O_SERIES_API_VERSION: &str = "2025-04-01-preview";
/// How many times a create whose answer was lost (and which is not found) is resent.
const MAX_RESENDS: u32 = 3;
/// The oldest dated api-version that serves o-series models.
pub const O_SERIES_MIN_API_VERSION: &str = "2024-12-01-preview";

mod uploads;

pub use uploads::{LARGE_FILE_BYTES, PART_BYTES};

/// Which URL surface to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Surface {
    /// `/openai/{path}?api-version={version}` (GA `2024-10-21`, or a preview).
    Dated(String),
    /// `/openai/v1/{path}`.
    V1,
}

/// One account's data plane.
#[derive(Debug, Clone)]
pub struct DataPlane {
    http: Http,
    endpoint: String,
    surface: Surface,
    /// The dated api-version for chat with o-series models, which Azure answers with 400 on
    /// versions before `2024-12-01-preview` ("enabled only for api versions
    /// 2024-12-01-preview and later"); Learn's reasoning page lists `2025-04-01-preview`.
    o_series_version: String,
    auth: Auth,
    /// The account's tenant when it is not the process's home tenant: bearer tokens are
    /// asked of it.
    tenant: Option<String>,
    /// Datasets larger than this go through the Uploads API ([`uploads`]).
    large_file_bytes: u64,
    /// Part size for the Uploads API.
    part_bytes: usize,
}

impl DataPlane {
    /// `endpoint` is `https://{resource}.openai.azure.com` (or the emulator's
    /// `http://127.0.0.1:PORT/{account}`).
    pub fn new(http: Http, endpoint: &str, surface: Surface, auth: Auth) -> Self {
        Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            surface,
            o_series_version: O_SERIES_API_VERSION.to_owned(),
            auth,
            tenant: None,
            large_file_bytes: uploads::LARGE_FILE_BYTES,
            part_bytes: uploads::PART_BYTES,
        }
    }

    /// An account in another tenant than the process's: its bearer tokens come from there.
    pub fn in_tenant(mut self, tenant: Option<String>) -> Self {
        self.tenant = tenant;
        self
    }

    /// The job `job` created, if a create whose answer was lost took effect: a training
    /// file id is unique to its upload, so the newest job on it with the same suffix is the
    /// one.
    async fn find_job(&self, job: &CreateJob) -> Result<Option<Job>, AoaiError> {
        let recent = self.list_jobs(None, 100).await?;
        Ok(recent.data.into_iter().find(|j| {
            j.training_file.as_deref() == Some(job.training_file.as_str())
                && j.suffix.as_deref() == job.suffix.as_deref()
        }))
    }

    /// A surface with pause and resume: this one, unless it is GA 2024-10-21 (which has
    /// neither), then the newest preview this client knows.
    fn preview_surface(&self) -> Surface {
        if self.preview_shapes() {
            self.surface.clone()
        } else {
            Surface::Dated(O_SERIES_API_VERSION.to_owned())
        }
    }

    /// A dated surface: job DELETE and Azure's model lifecycle fields exist only there.
    fn dated_surface(&self) -> Surface {
        match &self.surface {
            Surface::Dated(_) => self.surface.clone(),
            Surface::V1 => Surface::Dated(GA_API_VERSION.to_owned()),
        }
    }

    fn preview_shapes(&self) -> bool {
        shapes_method(&self.surface)
    }

    /// Where a job is created: its own surface, except a preference (DPO) job on the GA
    /// surface, whose job-create body has no `method` (azure-rest-api-specs
    /// `authoring/stable/2024-10-21`): it goes to `/openai/v1`, which defines
    /// `method.dpo.hyperparameters` (`OpenAI.v1` spec).
    fn job_surface(&self, job: &CreateJob) -> Surface {
        if job.method == TrainingMethod::Dpo && !self.preview_shapes() {
            Surface::V1
        } else {
            self.surface.clone()
        }
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::RequestBuilder, AoaiError> {
        self.request_on(&self.surface, method, path, query).await
    }

    /// A request on `surface`, whatever this client's own (DPO jobs go to a surface that
    /// defines `method`; o-series chat to a version that serves it).
    async fn request_on(
        &self,
        surface: &Surface,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::RequestBuilder, AoaiError> {
        let url = match surface {
            Surface::Dated(_) => format!("{}/openai/{path}", self.endpoint),
            Surface::V1 => format!("{}/openai/v1/{path}", self.endpoint),
        };
        let mut req = self.http.client().request(method, url);
        if let Surface::Dated(v) = surface {
            req = req.query(&[("api-version", v.as_str())]);
        }
        if !query.is_empty() {
            req = req.query(query);
        }
        self.auth
            .apply(req, COGNITIVE_SCOPE, self.tenant.as_deref())
            .await
    }

    fn page_query(after: Option<&str>, limit: u32) -> Vec<(&'static str, String)> {
        let mut q = vec![("limit", limit.to_string())];
        if let Some(a) = after {
            q.push(("after", a.to_owned()));
        }
        q
    }

    /// The create-job body for the surface the job goes to: top-level `hyperparameters` on
    /// the GA dated API, `method.{type}.hyperparameters` on v1 and previews.
    pub fn job_body(&self, job: &CreateJob) -> Value {
        let surface = self.job_surface(job);
        let mut body = json!({"model": job.model, "training_file": job.training_file});
        if let Some(v) = &job.validation_file {
            body["validation_file"] = json!(v);
        }
        if let Some(s) = &job.suffix {
            body["suffix"] = json!(s);
        }
        if let Some(s) = job.seed {
            body["seed"] = json!(s);
        }
        let mut hp = serde_json::to_value(&job.hyperparameters).unwrap_or(Value::Null);
        if job.method != TrainingMethod::Dpo
            && let Some(o) = hp.as_object_mut()
        {
            o.remove("beta");
        }
        let kind = match job.method {
            TrainingMethod::Supervised => "supervised",
            TrainingMethod::Dpo => "dpo",
        };
        if shapes_method(&surface) {
            body["method"] = json!({"type": kind, kind: {"hyperparameters": hp}});
        } else {
            body["hyperparameters"] = hp;
        }
        body
    }
}

/// Whether a surface's job-create body has `method` (v1, dated previews) rather than only
/// top-level `hyperparameters` (the GA dated version).
fn shapes_method(surface: &Surface) -> bool {
    match surface {
        Surface::Dated(v) => v.contains("preview"),
        Surface::V1 => true,
    }
}

#[async_trait]
impl Hub for DataPlane {
    async fn upload_file(
        &self,
        filename: &str,
        store: &dyn BlobStore,
        container: &str,
        name: &str,
    ) -> Result<FileObject, AoaiError> {
        if matches!(self.surface, Surface::Dated(_)) {
            let size = store.properties(container, name).await?.content_length;
            if size > self.large_file_bytes {
                return self
                    .upload_in_parts(filename, store, container, name, size)
                    .await;
            }
        }
        let mut resends = 0;
        loop {
            // Each attempt re-opens the blob and streams it: the file is never held in memory.
            let sent = self
                .http
                .json_once("upload file", || async {
                    let (props, reader) = store.open(container, name).await?;
                    let stream = tokio_util::io::ReaderStream::new(reader);
                    let part = reqwest::multipart::Part::stream_with_length(
                        reqwest::Body::wrap_stream(stream),
                        props.content_length,
                    )
                    .file_name(filename.to_owned())
                    .mime_str("application/json")
                    .map_err(|e| AoaiError::Decode {
                        operation: "upload file".into(),
                        detail: e.to_string(),
                    })?;
                    let form = reqwest::multipart::Form::new()
                        .text("purpose", "fine-tune")
                        .part("file", part);
                    Ok(self
                        .request(reqwest::Method::POST, "files", &[])
                        .await?
                        .multipart(form))
                })
                .await;
            match sent {
                Err(e) if e.may_have_taken_effect() && resends < MAX_RESENDS => {
                    if let Some(f) = self.find_file(filename).await? {
                        tracing::info!(file = %f.id, "The upload took effect though its answer was lost.");
                        return Ok(f);
                    }
                    resends += 1;
                }
                other => return other,
            }
        }
    }

    async fn find_file(&self, filename: &str) -> Result<Option<FileObject>, AoaiError> {
        let q = [("purpose", "fine-tune".to_owned())];
        let page: Page<FileObject> = self
            .http
            .json("list files", || async {
                self.request(reqwest::Method::GET, "files", &q).await
            })
            .await?;
        // Newest first: a name uploaded twice (by an older version) resolves to the latest.
        Ok(page
            .data
            .into_iter()
            .filter(|f| f.filename == filename && !f.is_failed())
            .max_by_key(|f| f.created_at))
    }

    async fn import_file(
        &self,
        filename: &str,
        content_url: &str,
    ) -> Result<FileObject, AoaiError> {
        let body =
            json!({"purpose": "fine-tune", "filename": filename, "content_url": content_url});
        self.http
            .json("import file", || async {
                Ok(self
                    .request(reqwest::Method::POST, "files/import", &[])
                    .await?
                    .json(&body))
            })
            .await
    }

    async fn get_file(&self, id: &str) -> Result<FileObject, AoaiError> {
        let path = format!("files/{id}");
        self.http
            .json("get file", || async {
                self.request(reqwest::Method::GET, &path, &[]).await
            })
            .await
    }

    async fn file_content(&self, id: &str) -> Result<Vec<u8>, AoaiError> {
        let path = format!("files/{id}/content");
        let resp = self
            .http
            .send("download file", || async {
                self.request(reqwest::Method::GET, &path, &[]).await
            })
            .await?;
        let bytes = resp.bytes().await.map_err(|e| AoaiError::Transport {
            operation: "download file".into(),
            sent: true,
            source: Box::new(e),
        })?;
        Ok(bytes.to_vec())
    }

    async fn delete_file(&self, id: &str) -> Result<(), AoaiError> {
        let path = format!("files/{id}");
        self.http
            .send("delete file", || async {
                self.request(reqwest::Method::DELETE, &path, &[]).await
            })
            .await
            .map(|_| ())
    }

    async fn create_job(&self, job: &CreateJob) -> Result<Job, AoaiError> {
        if let Some(s) = &job.suffix {
            crate::domain::aoai::check_suffix(s).map_err(|e| AoaiError::Decode {
                operation: "create job".into(),
                detail: e.into(),
            })?;
        }
        let body = self.job_body(job);
        let surface = self.job_surface(job);
        let mut resends = 0;
        loop {
            let sent = self
                .http
                .json_once("create fine-tuning job", || async {
                    Ok(self
                        .request_on(&surface, reqwest::Method::POST, "fine_tuning/jobs", &[])
                        .await?
                        .json(&body))
                })
                .await;
            match sent {
                Err(e) if e.may_have_taken_effect() && resends < MAX_RESENDS => {
                    if let Some(j) = self.find_job(job).await? {
                        tracing::info!(job = %j.id, "The job create took effect though its answer was lost.");
                        return Ok(j);
                    }
                    resends += 1;
                }
                other => return other,
            }
        }
    }

    async fn get_job(&self, id: &str) -> Result<Job, AoaiError> {
        let path = format!("fine_tuning/jobs/{id}");
        self.http
            .json("get fine-tuning job", || async {
                self.request(reqwest::Method::GET, &path, &[]).await
            })
            .await
    }

    async fn list_jobs(&self, after: Option<&str>, limit: u32) -> Result<Page<Job>, AoaiError> {
        let q = Self::page_query(after, limit);
        self.http
            .json("list fine-tuning jobs", || async {
                self.request(reqwest::Method::GET, "fine_tuning/jobs", &q)
                    .await
            })
            .await
    }

    async fn cancel_job(&self, id: &str) -> Result<Job, AoaiError> {
        let path = format!("fine_tuning/jobs/{id}/cancel");
        self.http
            .json("cancel fine-tuning job", || async {
                self.request(reqwest::Method::POST, &path, &[]).await
            })
            .await
    }

    async fn pause_job(&self, id: &str) -> Result<Job, AoaiError> {
        let path = format!("fine_tuning/jobs/{id}/pause");
        let surface = self.preview_surface();
        self.http
            .json("pause fine-tuning job", || async {
                self.request_on(&surface, reqwest::Method::POST, &path, &[])
                    .await
            })
            .await
    }

    async fn resume_job(&self, id: &str) -> Result<Job, AoaiError> {
        let path = format!("fine_tuning/jobs/{id}/resume");
        let surface = self.preview_surface();
        self.http
            .json("resume fine-tuning job", || async {
                self.request_on(&surface, reqwest::Method::POST, &path, &[])
                    .await
            })
            .await
    }

    async fn delete_job(&self, id: &str) -> Result<(), AoaiError> {
        let path = format!("fine_tuning/jobs/{id}");
        let surface = self.dated_surface();
        self.http
            .send("delete fine-tuning job", || async {
                self.request_on(&surface, reqwest::Method::DELETE, &path, &[])
                    .await
            })
            .await
            .map(|_| ())
    }

    async fn model(&self, id: &str) -> Result<Option<ModelInfo>, AoaiError> {
        let path = format!("models/{id}");
        let surface = self.dated_surface();
        let got = self
            .http
            .json("get model", || async {
                self.request_on(&surface, reqwest::Method::GET, &path, &[])
                    .await
            })
            .await;
        match got {
            Ok(m) => Ok(Some(m)),
            Err(AoaiError::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn list_events(
        &self,
        id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<JobEvent>, AoaiError> {
        let (path, q) = (
            format!("fine_tuning/jobs/{id}/events"),
            Self::page_query(after, limit),
        );
        self.http
            .json("list job events", || async {
                self.request(reqwest::Method::GET, &path, &q).await
            })
            .await
    }

    async fn list_checkpoints(
        &self,
        id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Checkpoint>, AoaiError> {
        let (path, q) = (
            format!("fine_tuning/jobs/{id}/checkpoints"),
            Self::page_query(after, limit),
        );
        self.http
            .json("list job checkpoints", || async {
                self.request(reqwest::Method::GET, &path, &q).await
            })
            .await
    }
}

#[async_trait]
impl Inference for DataPlane {
    async fn chat(
        &self,
        deployment: &str,
        model: &str,
        req: &ChatRequest,
    ) -> Result<ChatResult, AoaiError> {
        let mut body = json!({"messages": req.messages});
        if let Some(t) = req.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(m) = req.max_tokens {
            let key = if uses_max_completion_tokens(model) {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            body[key] = json!(m);
        }
        // o-series models answer 400 on dated versions before 2024-12-01-preview.
        let surface = match &self.surface {
            Surface::Dated(v)
                if uses_max_completion_tokens(model) && v.as_str() < O_SERIES_MIN_API_VERSION =>
            {
                Surface::Dated(self.o_series_version.clone())
            }
            s => s.clone(),
        };
        let path = match surface {
            Surface::Dated(_) => format!("deployments/{deployment}/chat/completions"),
            Surface::V1 => {
                body["model"] = json!(deployment);
                "chat/completions".to_owned()
            }
        };
        let started = std::sync::Mutex::new(Instant::now());
        let resp: Value = self
            .http
            .json("chat completion", || async {
                // Latency is that of the attempt that succeeded.
                if let Ok(mut s) = started.lock() {
                    *s = Instant::now();
                }
                Ok(self
                    .request_on(&surface, reqwest::Method::POST, &path, &[])
                    .await?
                    .json(&body))
            })
            .await?;
        let latency_ms = started
            .lock()
            .map(|s| s.elapsed().as_millis() as u64)
            .unwrap_or_default();
        let choice = resp.get("choices").and_then(|c| c.get(0));
        Ok(ChatResult {
            content: choice
                .and_then(|c| c.pointer("/message/content"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            finish_reason: choice
                .and_then(|c| c.get("finish_reason"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            usage: resp
                .get("usage")
                .and_then(|u| serde_json::from_value::<Usage>(u.clone()).ok())
                .unwrap_or_default(),
            latency_ms,
        })
    }
}
