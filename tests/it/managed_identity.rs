//! The handler in Azure mode signs in with the managed identity exactly as inside Azure
//! Functions: `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (the App Service identity protocol,
//! api-version 2019-08-01), served here by a loopback server, through `azure_identity`.
//! The tokens it issues are the ones the emulated Azure OpenAI accounts receive.

use crate::common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json};
use fthub::domain::topology::Topology;
use fthub::local::emulator::world::Timings;
use fthub::local::emulator::{Emulator, builtin_accounts};
use serde_json::json;

/// One token request: its query and the `X-IDENTITY-HEADER` it carried.
type TokenRequest = (std::collections::HashMap<String, String>, Option<String>);

#[derive(Clone, Default)]
struct Identity {
    requests: Arc<Mutex<Vec<TokenRequest>>>,
}

const SECRET_HEADER: &str = "identity-header-secret";

fn token_for(resource: &str) -> String {
    format!("mi-token-for-{resource}")
}

async fn issue(
    State(id): State<Identity>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let header = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    id.requests
        .lock()
        .expect("lock")
        .push((q.clone(), header.clone()));
    if header.as_deref() != Some(SECRET_HEADER) {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            Json(json!({"error": "bad header"})),
        );
    }
    let resource = q.get("resource").cloned().unwrap_or_default();
    let expires = chrono::Utc::now().timestamp() + 3600;
    (
        axum::http::StatusCode::OK,
        Json(
            json!({"access_token": token_for(&resource), "expires_on": expires.to_string(),
                    "resource": resource, "token_type": "Bearer"}),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_signs_in_with_the_app_service_managed_identity_protocol() {
    let emulator =
        fthub::local::emulator::spawn(0, Emulator::new(builtin_accounts(), Timings::default()))
            .await
            .expect("emulator");
    let identity = Identity::default();
    let app = Router::new()
        .route("/msi/token", axum::routing::get(issue))
        .with_state(identity.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let identity_url = format!("http://{}/msi/token", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });

    let home = tempfile::tempdir().expect("home");
    let topology = home.path().join("topology.json");
    std::fs::write(
        &topology,
        serde_json::to_string(&Topology::local(&emulator)).expect("json"),
    )
    .expect("write");
    let serve = common::Serve::start_with_env(
        home.path(),
        &[
            ("FTHUB_TOPOLOGY", topology.to_str().expect("utf8")),
            ("IDENTITY_ENDPOINT", &identity_url),
            ("IDENTITY_HEADER", SECRET_HEADER),
        ],
    )
    .await;
    // KeepWarm lists every spoke's deployments through ARM (drift detection).
    let (status, _, body) = serve
        .invoke("KeepWarm", common::fixture("timer_past_due.json"))
        .await;
    assert_eq!(status, 200, "{body}");

    let requests = identity.requests.lock().expect("lock").clone();
    assert!(
        !requests.is_empty(),
        "the handler asked the identity endpoint for a token"
    );
    for (q, header) in &requests {
        assert_eq!(q.get("api-version").map(String::as_str), Some("2019-08-01"));
        assert_eq!(
            header.as_deref(),
            Some(SECRET_HEADER),
            "X-IDENTITY-HEADER carries IDENTITY_HEADER"
        );
    }
    let resources: std::collections::BTreeSet<_> = requests
        .iter()
        .filter_map(|(q, _)| q.get("resource").cloned())
        .collect();
    assert!(
        resources.contains("https://management.azure.com"),
        "an ARM token was requested for the ARM resource: {resources:?}"
    );
    // Cached: one token request per resource however many ARM calls were made.
    assert_eq!(
        requests.len(),
        resources.len(),
        "tokens are cached: {requests:?}"
    );

    let log = common::emulator_requests(&emulator).await;
    let arm: Vec<_> = log
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/arm/")))
        .collect();
    assert!(
        arm.len() >= 2,
        "KeepWarm listed deployments on the spokes: {log:?}"
    );
    let want =
        fthub::local::emulator::credential_fingerprint(&token_for("https://management.azure.com"));
    for r in arm {
        assert_eq!(
            r["credential"],
            want.as_str(),
            "ARM saw the managed identity's token: {r}"
        );
    }
}
