//! ARM handlers: deployments (PUT, GET, list, DELETE) and long-running operations.

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::azure;
use crate::dataplane::Q;
use crate::world::{Refusal, World};
use crate::{Emulator, error, refusal};

#[derive(Deserialize)]
pub(crate) struct ArmPath {
    sub: String,
    rg: String,
    account: String,
    name: Option<String>,
}

pub(crate) fn check_arm(w: &World, p: &ArmPath) -> Result<(), Refusal> {
    match w.accounts.get(&p.account) {
        Some(a)
            if a.config.subscription == p.sub
                && a.config.resource_group.eq_ignore_ascii_case(&p.rg) =>
        {
            Ok(())
        }
        _ => Err(Refusal {
            status: 404,
            code: "ResourceNotFound",
            message: format!(
                "The Resource 'Microsoft.CognitiveServices/accounts/{}' was not found.",
                p.account
            ),
        }),
    }
}

pub(crate) async fn put_deployment(
    State(emu): State<Emulator>,
    Path(p): Path<ArmPath>,
    headers: HeaderMap,
    q: Q,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        );
    };
    // `Bearer a, Bearer b`: up to three tokens, each of its tenant (None: not a JWT).
    let aux: Vec<Option<String>> = headers
        .get("x-ms-authorization-auxiliary")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .filter_map(|t| t.trim().strip_prefix("Bearer "))
                .map(azure::token_tenant)
                .collect()
        })
        .unwrap_or_default();
    let base = emu.base.lock().map(|b| b.clone()).unwrap_or_default();
    let name = p.name.clone().unwrap_or_default();
    // Learn documents Developer-tier deployments with api-version 2025-07-01-preview; older
    // versions do not know the SKU.
    let developer = body
        .pointer("/sku/name")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case(azure::sku::DEVELOPER));
    let version = q.get("api-version").map_or("", String::as_str);
    if developer && version < "2025-07-01-preview" {
        return error(
            400,
            "InvalidResourceProperties",
            &format!(
                "The SKU 'developertier' is not supported by api-version {version}; use 2025-07-01-preview or later."
            ),
        );
    }
    let result = emu.with(|w| {
        check_arm(w, &p)?;
        w.put_deployment(&p.account, &name, &body, &aux)
    });
    match result {
        Ok((created, v, op)) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let op_url = format!(
                "{base}/arm/operations/{op}?api-version={}",
                q.get("api-version").map_or("", String::as_str)
            );
            let wait = emu.with(|w| w.operation_wait(&op)).to_string();
            (
                status,
                [("azure-asyncoperation", op_url), ("retry-after", wait)],
                Json(v),
            )
                .into_response()
        }
        Err(r) => refusal(r),
    }
}

pub(crate) async fn get_deployment(
    State(emu): State<Emulator>,
    Path(p): Path<ArmPath>,
) -> Response {
    let name = p.name.clone().unwrap_or_default();
    emu.with(|w| match check_arm(w, &p) {
        Err(r) => refusal(r),
        Ok(()) => match w.deployment_json(&p.account, &name) {
            Some(v) => Json(v).into_response(),
            None => error(
                404,
                "DeploymentNotFound",
                &format!("Deployment {name} not found."),
            ),
        },
    })
}

pub(crate) async fn list_deployments(
    State(emu): State<Emulator>,
    Path(p): Path<ArmPath>,
    uri: OriginalUri,
    q: Q,
) -> Response {
    let base = emu.base.lock().map(|b| b.clone()).unwrap_or_default();
    emu.with(|w| {
        if let Err(r) = check_arm(w, &p) {
            return refusal(r);
        }
        let names: Vec<String> = w.accounts[&p.account].deployments.keys().cloned().collect();
        let skip: usize = q
            .get("$skipToken")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let size = w.timings.arm_page_size.max(1);
        let value: Vec<Value> = names
            .iter()
            .skip(skip)
            .take(size)
            .filter_map(|n| w.deployment_json(&p.account, n))
            .collect();
        let mut page = json!({"value": value});
        if skip + size < names.len() {
            let next = format!(
                "{base}{}?api-version={}&$skipToken={}",
                uri.path(),
                q.get("api-version").map_or("", String::as_str),
                skip + size
            );
            page["nextLink"] = json!(next);
        }
        Json(page).into_response()
    })
}

/// DELETE is a long-running operation: 202 with `Location` and `Retry-After` while the
/// deployment is being deleted (as the ARM spec's `Deployments_Delete`), 204 when it does not
/// exist.
pub(crate) async fn delete_deployment(
    State(emu): State<Emulator>,
    Path(p): Path<ArmPath>,
    q: Q,
) -> Response {
    let name = p.name.clone().unwrap_or_default();
    let base = emu.base.lock().map(|b| b.clone()).unwrap_or_default();
    emu.with(|w| {
        if let Err(r) = check_arm(w, &p) {
            return refusal(r);
        }
        match w.delete_deployment(&p.account, &name) {
            Some(op) => {
                let location = format!(
                    "{base}/arm/operations/{op}?api-version={}",
                    q.get("api-version").map_or("", String::as_str)
                );
                let wait = w.operation_wait(&op).to_string();
                (
                    StatusCode::ACCEPTED,
                    [("location", location), ("retry-after", wait)],
                )
                    .into_response()
            }
            None => StatusCode::NO_CONTENT.into_response(),
        }
    })
}

/// An operation's status; a deletion's location answers 202 until it is done.
pub(crate) async fn operation(State(emu): State<Emulator>, Path(id): Path<String>) -> Response {
    emu.with(|w| match w.operation_json(&id) {
        None => error(404, "NotFound", "operation not found"),
        Some(v) => {
            let wait = w.operation_wait(&id).to_string();
            let running = v["status"] == "InProgress";
            let code = if running && id.starts_with("del-") {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            let mut r = (code, Json(v)).into_response();
            if running {
                r.headers_mut()
                    .insert("retry-after", wait.parse().expect("number header"));
            }
            r
        }
    })
}
