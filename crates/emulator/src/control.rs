//! The control API under `/_emulator/` for tests and the demo: state, clock, faults,
//! timings, the request log.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Emulator;
use crate::world::{Faults, Timings};

pub(crate) async fn state(State(emu): State<Emulator>) -> Response {
    let v = emu.with(|w| {
        let accounts: Vec<Value> = w
            .accounts
            .values()
            .map(|a| {
                json!({
                    "name": a.config.name, "region": a.config.region, "subscription": a.config.subscription,
                    "resource_group": a.config.resource_group, "tenant": a.config.tenant, "resource_id": a.config.resource_id(),
                    "deployments": a.deployments.keys().filter_map(|n| w.deployment_json(&a.config.name, n)).collect::<Vec<_>>(),
                    "jobs": a.jobs.iter().map(|j| json!({"id": j.id, "status": j.status, "fine_tuned_model": j.fine_tuned_model})).collect::<Vec<_>>(),
                    "models": a.models.keys().collect::<Vec<_>>(),
                    "files": a.files.values().map(|f| json!({"id": f.id, "filename": f.filename, "purpose": f.purpose})).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({"now": w.now().to_rfc3339(), "timings": w.timings, "accounts": accounts,
               "expired": w.expired.iter().map(|(a, d, why)| json!({"account": a, "deployment": d, "reason": why})).collect::<Vec<_>>()})
    });
    Json(v).into_response()
}

#[derive(Deserialize)]
pub(crate) struct ClockBody {
    #[serde(default)]
    advance_seconds: i64,
    #[serde(default)]
    advance_days: i64,
}

pub(crate) async fn clock(State(emu): State<Emulator>, Json(b): Json<ClockBody>) -> Response {
    let now = emu.with(|w| {
        w.advance(
            chrono::Duration::seconds(b.advance_seconds) + chrono::Duration::days(b.advance_days),
        );
        w.now()
    });
    Json(json!({"now": now.to_rfc3339()})).into_response()
}

#[derive(Deserialize)]
pub(crate) struct FaultBody {
    account: Option<String>,
    region: Option<String>,
    #[serde(flatten)]
    faults: Faults,
}

pub(crate) async fn faults(State(emu): State<Emulator>, Json(b): Json<FaultBody>) -> Response {
    emu.with(|w| {
        if let Some(a) = b.account.clone() {
            w.account_faults.insert(a, b.faults.clone());
        }
        if let Some(r) = b.region.clone() {
            w.region_faults.insert(r, b.faults.clone());
        }
    });
    Json(json!({"ok": true})).into_response()
}

pub(crate) async fn timings(State(emu): State<Emulator>, Json(t): Json<Timings>) -> Response {
    emu.with(|w| w.timings = t);
    Json(json!({"ok": true})).into_response()
}

pub(crate) async fn requests(State(emu): State<Emulator>) -> Response {
    Json(emu.with(|w| json!(w.log.iter().collect::<Vec<_>>()))).into_response()
}

pub(crate) async fn clear_requests(State(emu): State<Emulator>, _m: Method) -> Response {
    emu.with(|w| w.log.clear());
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
pub(crate) struct RetireBody {
    id: String,
    #[serde(flatten)]
    retirement: crate::world::Retirement,
}

/// Sets when a model stops being fine-tunable and served (unix seconds).
pub(crate) async fn retire_model(
    State(emu): State<Emulator>,
    Json(b): Json<RetireBody>,
) -> Response {
    emu.with(|w| w.set_retirement(&b.id, b.retirement));
    Json(json!({"ok": true})).into_response()
}
