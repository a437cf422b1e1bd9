//! The emulator driven by the SDKs our users use: OpenAI's Python library as `AzureOpenAI`
//! on the GA and a preview api-version and as `OpenAI` on /openai/v1, and Microsoft's
//! `azure-mgmt-cognitiveservices` for deployments. The scenarios live in
//! tests/support/sdk_drive.py; each runs against a fresh emulator.

use crate::common;

use std::process::Command;

use crate::emulator_env::fast;
use fthub::local::emulator::world::Timings;
use fthub::local::emulator::{Emulator, builtin_accounts};
use serde_json::Value;

async fn drive(scenario: &str, timings: Timings) -> Value {
    let py = common::python_with("openai, azure.mgmt.cognitiveservices");
    let base = fthub::local::emulator::spawn(0, Emulator::new(builtin_accounts(), timings))
        .await
        .expect("emulator");
    let out = tokio::task::spawn_blocking({
        let scenario = scenario.to_owned();
        move || {
            Command::new(py)
                .arg(common::repo().join("tests/support/sdk_drive.py"))
                .args([&base, &scenario])
                .arg(common::repo().join("samples"))
                .output()
                .expect("python")
        }
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "{scenario}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON line of facts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_openai_on_the_ga_api_version_trains_pages_deploys_a_checkpoint_streams_and_uploads_in_parts()
 {
    if !common::external("the pinned Python SDKs") {
        return;
    }
    let facts = drive("ga", fast()).await;
    assert_eq!(facts["jobs"], 3, "{facts}");
    assert!(
        facts["streamed_chunks"].as_u64().is_some_and(|n| n > 1),
        "{facts}"
    );
    assert!(facts["events"].as_u64().is_some_and(|n| n >= 3), "{facts}");
    assert!(
        facts["model"]
            .as_str()
            .is_some_and(|m| m.starts_with("gpt-4.1-mini-2025-04-14.ft-")),
        "{facts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_openai_on_a_preview_api_version_runs_a_preference_job_and_pauses_and_resumes_one() {
    if !common::external("the pinned Python SDKs") {
        return;
    }
    let facts = drive("preview", fast()).await;
    assert_eq!(facts["method"], "dpo", "{facts}");
    assert_eq!(facts["paused"], true, "{facts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_client_on_the_v1_surface_trains_lists_files_and_models_and_streams() {
    if !common::external("the pinned Python SDKs") {
        return;
    }
    let facts = drive("v1", fast()).await;
    assert!(facts["files"].as_u64().is_some_and(|n| n >= 2), "{facts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_sdk_deploys_across_tenants_lists_across_pages_deletes_and_uses_developer_tier()
 {
    if !common::external("the pinned Python SDKs") {
        return;
    }
    let facts = drive(
        "arm",
        Timings {
            arm_page_size: 2,
            ..fast()
        },
    )
    .await;
    assert_eq!(facts["developer_sku"], "developertier", "{facts}");
    assert_eq!(facts["cross_tenant"], "cross", "{facts}");
    let listed: Vec<&str> = facts["listed"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(listed, ["one", "three", "two"]);
}
