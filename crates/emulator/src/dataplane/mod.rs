//! Data-plane handlers: files, fine-tuning jobs, chat completions (dated and /openai/v1).

use axum::body::Bytes;
use axum::extract::{Multipart, OriginalUri, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Emulator, error, refusal};

mod chat;
mod models;
mod uploads;

pub(crate) use chat::*;
pub(crate) use models::*;
pub(crate) use uploads::*;

pub(crate) type Q = Query<std::collections::HashMap<String, String>>;

pub(crate) fn found(v: Option<Value>, what: &str) -> Response {
    match v {
        Some(v) => Json(v).into_response(),
        None => error(404, "notFound", &format!("{what} not found")),
    }
}

pub(crate) async fn upload(
    State(emu): State<Emulator>,
    Path(p): Path<Vec<(String, String)>>,
    mut form: Multipart,
) -> Response {
    let account = p[0].1.clone();
    let (mut purpose, mut filename, mut bytes) = (None, None, None);
    loop {
        match form.next_field().await {
            Ok(Some(field)) => match field.name() {
                Some("purpose") => purpose = field.text().await.ok(),
                Some("file") => {
                    filename = field.file_name().map(str::to_owned);
                    bytes = field.bytes().await.ok();
                }
                _ => {}
            },
            Ok(None) => break,
            Err(e) => {
                return error(
                    400,
                    "invalidPayload",
                    &format!("malformed multipart body: {e}"),
                );
            }
        }
    }
    let (Some(purpose), Some(bytes)) = (purpose, bytes) else {
        return error(400, "invalidPayload", "the form needs purpose and file");
    };
    let name = filename.unwrap_or_else(|| "upload.jsonl".into());
    let base = emu.base.lock().map(|b| b.clone()).unwrap_or_default();
    match emu.with(|w| w.add_file(&account, &name, &purpose, bytes.to_vec())) {
        Ok(v) => {
            let loc = format!(
                "{base}/{account}/openai/files/{}",
                v["id"].as_str().unwrap_or("")
            );
            (StatusCode::CREATED, [("location", loc)], Json(v)).into_response()
        }
        Err(r) => refusal(r),
    }
}

#[derive(Deserialize)]
pub(crate) struct ImportBody {
    purpose: String,
    filename: String,
    content_url: String,
}

pub(crate) async fn import(
    State(emu): State<Emulator>,
    Path(account): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(b) = serde_json::from_slice::<ImportBody>(&body) else {
        return error(
            400,
            "invalidPayload",
            "purpose, filename and content_url are required",
        );
    };
    // The emulator can fetch loopback URLs only; anything else fails as Azure would when
    // the URL is not reachable.
    let fetched = match reqwest::Client::new().get(&b.content_url).send().await {
        Ok(r) if r.status().is_success() && b.content_url.starts_with("http://127.0.0.1") => {
            r.bytes().await.ok()
        }
        _ => None,
    };
    let Some(bytes) = fetched else {
        return error(
            400,
            "fileImportFailed",
            "Import of file failed: the content_url could not be read.",
        );
    };
    match emu.with(|w| w.add_file(&account, &b.filename, &b.purpose, bytes.to_vec())) {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(r) => refusal(r),
    }
}

pub(crate) async fn list_files(
    State(emu): State<Emulator>,
    Path(account): Path<String>,
    q: Q,
) -> Response {
    let purpose = q.get("purpose").map(String::as_str);
    let ascending = q.get("order").is_some_and(|o| o == "asc");
    let limit = limit_of(&q, 10_000);
    match emu.with(|w| {
        w.files_page(
            &account,
            purpose,
            q.get("after").map(String::as_str),
            limit,
            ascending,
        )
    }) {
        Some(v) => Json(v).into_response(),
        None => error(404, "notFound", "account not found"),
    }
}

pub(crate) async fn get_file(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
) -> Response {
    found(emu.with(|w| w.file_json(&account, &id)), "file")
}

pub(crate) async fn delete_file(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
) -> Response {
    let gone = emu.with(|w| {
        w.accounts
            .get_mut(&account)
            .and_then(|a| a.files.remove(&id))
            .is_some()
    });
    if gone {
        Json(json!({"object": "file", "id": id, "deleted": true})).into_response()
    } else {
        error(404, "notFound", "file not found")
    }
}

pub(crate) async fn file_content(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
) -> Response {
    match emu.with(|w| w.file_content(&account, &id)) {
        Some(b) => ([("content-type", "application/octet-stream")], b).into_response(),
        None => error(404, "notFound", "file not found"),
    }
}

pub(crate) async fn create_job(
    State(emu): State<Emulator>,
    Path(account): Path<String>,
    uri: OriginalUri,
    q: Q,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalidPayload", "the body is not JSON");
    };
    let surface = surface_of(&uri, &q);
    match emu.with(|w| w.create_job(&account, &body, &surface)) {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(r) => refusal(r),
    }
}

/// `v1` for the /openai/v1 surface, else the dated api-version.
pub(crate) fn surface_of(uri: &OriginalUri, q: &Q) -> String {
    if uri.path().contains("/openai/v1/") {
        "v1".to_owned()
    } else {
        q.get("api-version").cloned().unwrap_or_default()
    }
}

pub(crate) fn limit_of(q: &Q, default: usize) -> usize {
    q.get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(default)
}

pub(crate) async fn list_jobs(
    State(emu): State<Emulator>,
    Path(account): Path<String>,
    q: Q,
) -> Response {
    found(
        emu.with(|w| {
            w.list_jobs(
                &account,
                q.get("after").map(String::as_str),
                limit_of(&q, 20),
            )
        }),
        "account",
    )
}

pub(crate) async fn get_job(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
) -> Response {
    found(emu.with(|w| w.job_json(&account, &id)), "job")
}

pub(crate) async fn cancel_job(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
) -> Response {
    match emu.with(|w| w.cancel_job(&account, &id)) {
        Ok(v) => Json(v).into_response(),
        Err(r) => refusal(r),
    }
}

pub(crate) async fn job_events(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
    q: Q,
) -> Response {
    job_list(&emu, &account, &id, false, &q)
}

pub(crate) async fn job_checkpoints(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
    q: Q,
) -> Response {
    job_list(&emu, &account, &id, true, &q)
}

/// Events (default page 20) or checkpoints (default page 10) of a job.
pub(crate) fn job_list(
    emu: &Emulator,
    account: &str,
    id: &str,
    checkpoints: bool,
    q: &Q,
) -> Response {
    let limit = limit_of(q, if checkpoints { 10 } else { 20 });
    found(
        emu.with(|w| {
            w.job_list(
                account,
                id,
                checkpoints,
                q.get("after").map(String::as_str),
                limit,
            )
        }),
        "job",
    )
}

/// `DELETE /fine_tuning/jobs/{id}`: dated surfaces only (the v1 spec has no job DELETE).
pub(crate) async fn delete_job(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
    uri: OriginalUri,
    q: Q,
) -> Response {
    if surface_of(&uri, &q) == "v1" {
        return not_found();
    }
    match emu.with(|w| w.delete_job(&account, &id)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => refusal(r),
    }
}

/// `POST …/pause` and `…/resume`: preview api-versions and /openai/v1 (not GA 2024-10-21).
pub(crate) async fn pause_job(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
    uri: OriginalUri,
    q: Q,
) -> Response {
    pause_or_resume(&emu, &account, &id, &surface_of(&uri, &q), true)
}

pub(crate) async fn resume_job(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
    uri: OriginalUri,
    q: Q,
) -> Response {
    pause_or_resume(&emu, &account, &id, &surface_of(&uri, &q), false)
}

fn pause_or_resume(
    emu: &Emulator,
    account: &str,
    id: &str,
    surface: &str,
    pause: bool,
) -> Response {
    if !has_pause(surface) {
        return not_found();
    }
    let done = emu.with(|w| {
        if pause {
            w.pause_job(account, id)
        } else {
            w.resume_job(account, id)
        }
    });
    match done {
        Ok(v) => Json(v).into_response(),
        Err(r) => refusal(r),
    }
}

fn has_pause(surface: &str) -> bool {
    surface == "v1" || surface.ends_with("-preview")
}

/// What Azure answers for a path its surface does not have.
pub(crate) fn not_found() -> Response {
    error(404, "404", "Resource not found")
}
