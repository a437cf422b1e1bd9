//! `GET /models` and `GET /models/{id}`.

use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Json, Response};

use super::{Q, not_found, surface_of};
use crate::Emulator;

pub(crate) async fn list_models(
    State(emu): State<Emulator>,
    Path(account): Path<String>,
    uri: OriginalUri,
    q: Q,
) -> Response {
    let surface = surface_of(&uri, &q);
    match emu.with(|w| w.models_json(&account, &surface)) {
        Some(v) => Json(v).into_response(),
        None => not_found(),
    }
}

pub(crate) async fn get_model(
    State(emu): State<Emulator>,
    Path((account, id)): Path<(String, String)>,
    uri: OriginalUri,
    q: Q,
) -> Response {
    let surface = surface_of(&uri, &q);
    match emu.with(|w| w.model_json(&account, &id, &surface)) {
        Some(v) => Json(v).into_response(),
        None => not_found(),
    }
}
