//! The Uploads API (dated surfaces; the v1 spec has none): start, parts (multipart field
//! `data`), complete, cancel.

use axum::body::Bytes;
use axum::extract::{Multipart, OriginalUri, Path, State};
use axum::response::{IntoResponse, Json, Response};
use serde_json::Value;

use super::{Q, not_found, surface_of};
use crate::world::Refusal;
use crate::{Emulator, error, refusal};

fn answer(r: Result<Value, Refusal>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(r) => refusal(r),
    }
}

pub(crate) async fn start_upload(
    State(emu): State<Emulator>,
    Path(account): Path<String>,
    uri: OriginalUri,
    q: Q,
    body: Bytes,
) -> Response {
    if surface_of(&uri, &q) == "v1" {
        return not_found();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalidPayload", "the body is not JSON");
    };
    answer(emu.with(|w| w.start_upload(&account, &body)))
}

pub(crate) async fn add_part(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
    mut form: Multipart,
) -> Response {
    let mut data = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) if field.name() == Some("data") => data = field.bytes().await.ok(),
            Ok(Some(_)) => {}
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
    let Some(data) = data else {
        return error(
            400,
            "invalidPayload",
            "the form needs the part as field `data`",
        );
    };
    answer(emu.with(|w| w.add_part(&account, &id, data.to_vec())))
}

pub(crate) async fn complete_upload(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let parts: Option<Vec<String>> = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| serde_json::from_value(v.get("part_ids")?.clone()).ok());
    let Some(parts) = parts else {
        return error(400, "invalidPayload", "part_ids is required");
    };
    answer(emu.with(|w| w.complete_upload(&account, &id, &parts)))
}

pub(crate) async fn cancel_upload(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
) -> Response {
    answer(emu.with(|w| w.cancel_upload(&account, &id)))
}
