//! The pipeline and the CLI on Azure Storage (Azurite through the official SDK adapter):
//! a submission uploaded by Microsoft's Python SDK starts a run under `fthub dev --storage`,
//! the CLI works against the same account, and a 200 MB blob streams out of either store
//! within a fixed memory bound.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use fthub::adapters::azure::storage::{
    AzureBlobStore, DEFAULT_API_VERSION, parse_connection_string,
};
use fthub::ports::{BlobStore, Condition};
use serde_json::Value;

fn python() -> String {
    common::python_with("azure.storage.blob")
}

fn azure_store() -> AzureBlobStore {
    let t =
        parse_connection_string(&common::azurite().connection_string).expect("connection string");
    AzureBlobStore::new(t, DEFAULT_API_VERSION).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_uploaded_with_the_python_sdk_reaches_training_under_fthub_dev_storage() {
    if !common::external("Azurite and the Python storage SDK") {
        return;
    }
    let az = common::azurite();
    let home = tempfile::tempdir().expect("home");
    let dev = common::Dev::start(
        &common::repo(),
        home.path(),
        &["--storage", &az.connection_string],
    )
    .await;
    let project = format!("py{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let out = Command::new(python())
        .arg(common::repo().join("tests/support/upload_submission.py"))
        .args([&az.connection_string, &project, "2026-11-v1"])
        .arg(common::repo().join("samples/classification"))
        .args(["train.jsonl", "eval.jsonl", "manifest.json"])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "upload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The run appears in the status API, read by the handler from Azurite.
    let mut run: Option<Value> = None;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(90) {
        if let Ok(r) = dev.client.get(dev.url("/api/status/runs")).send().await
            && let Ok(v) = r.json::<Value>().await
            && let Some(found) = v["runs"]
                .as_array()
                .and_then(|a| a.iter().find(|r| r["project"] == project.as_str()))
            && ["training", "evaluating", "dev", "test", "prod"]
                .contains(&found["stage"].as_str().unwrap_or(""))
        {
            run = Some(found.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run = run.expect("the run reached training within 90 s");
    let id = run["id"].as_str().expect("id");

    // Everything the pipeline wrote is in Azurite, not on the local disk.
    let store = azure_store();
    let (_, report) = store
        .get("reports", &format!("{id}/validation.json"))
        .await
        .expect("validation report in Azurite");
    let report: Value = serde_json::from_slice(&report).expect("json");
    assert_eq!(report["verdict"], "accepted", "{report}");
    assert!(
        store.get("state", &format!("runs/{id}.json")).await.is_ok(),
        "run document in Azurite"
    );
    assert!(
        !home.path().join("storage/reports").exists(),
        "nothing may be written to the local store when --storage is given"
    );
    // The host stand-in kept its Event Grid receipts in Azurite too.
    let receipts = store
        .list("azure-webjobs-hosts", "blobreceipts/")
        .await
        .expect("list");
    assert!(
        receipts.iter().any(|r| r
            .name
            .contains(&format!("{project}/2026-11-v1/manifest.json"))),
        "receipt for the manifest in Azurite"
    );

    // `fthub wait` follows the run through the host's status API (plain lines, no TTY).
    let out = Command::new(common::fthub())
        .args([
            "wait",
            id,
            "--for",
            "training",
            "--timeout",
            "60",
            "--url",
            &dev.url(""),
        ])
        .output()
        .expect("fthub wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress.lines().all(|l| l.starts_with(&format!("{id}: "))),
        "{progress}"
    );
    assert!(
        progress.contains(": training"),
        "the stage is shown: {progress}"
    );
    let out = Command::new(common::fthub())
        .args([
            "wait",
            "no-such-run",
            "--for",
            "prod",
            "--url",
            &dev.url(""),
        ])
        .output()
        .expect("fthub wait");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fthub status"),
        "names the next step"
    );

    // The CLI reads the same views straight from storage.
    let out = Command::new(common::fthub())
        .args(["status", id, "--json", "--storage", &az.connection_string])
        .output()
        .expect("fthub status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(v["run"]["id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fthub_submit_and_storage_ls_work_against_a_connection_string() {
    if !common::external("Azurite") {
        return;
    }
    let az = common::azurite();
    // The containers exist in a deployed account (infra creates them).
    for c in fthub::app::settings::CONTAINERS {
        azure_store().ensure_container(c).await.expect("container");
    }
    let project = format!("cli{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let out = Command::new(common::fthub())
        .arg("submit")
        .arg(common::repo().join("samples/classification"))
        .args(["--project", &project, "--submission", "s1", "--as", "ds"])
        .env("FTHUB_STORAGE", &az.connection_string)
        .output()
        .expect("fthub submit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = azure_store();
    let (_, manifest) = store
        .get("datasets", &format!("{project}/s1/manifest.json"))
        .await
        .expect("manifest uploaded");
    let manifest: Value = serde_json::from_slice(&manifest).expect("json");
    assert_eq!(manifest["submitted_by"], "ds");
    let out = Command::new(common::fthub())
        .args([
            "storage",
            "ls",
            &format!("datasets/{project}/"),
            "--storage",
            &az.connection_string,
        ])
        .output()
        .expect("fthub storage ls");
    let listing = String::from_utf8_lossy(&out.stdout);
    for f in ["eval.jsonl", "manifest.json", "train.jsonl"] {
        assert!(listing.contains(&format!("{project}/s1/{f}")), "{listing}");
    }
    let out = Command::new(common::fthub())
        .args([
            "storage",
            "ls",
            &format!("datasets/{project}/"),
            "--json",
            "--storage",
            &az.connection_string,
        ])
        .output()
        .expect("fthub storage ls --json");
    let listed: Value = serde_json::from_slice(&out.stdout).expect("json listing");
    let sizes: Vec<u64> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|b| b["bytes"].as_u64())
        .collect();
    assert_eq!(sizes.len(), 3, "{listed}");
    assert!(sizes.iter().all(|b| *b > 0), "{listed}");
    let out = Command::new(common::fthub())
        .args(["storage", "check", "--storage", &az.connection_string])
        .output()
        .expect("fthub storage check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("ok "))
            .count(),
        4
    );
}

#[test]
fn a_storage_error_names_the_account_problem_without_echoing_the_key() {
    let out = Command::new(common::fthub())
        .args([
            "storage",
            "ls",
            "datasets",
            "--storage",
            "AccountName=x;AccountKey=sekr3t!!",
        ])
        .output()
        .expect("fthub");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AccountKey is not base64"), "{err}");
    assert!(!err.contains("sekr3t"), "{err}");
}

/// Streams a 200 MB blob through `fthub storage get` and checks every byte arrived while
/// the process stayed far below the blob's size.
fn stream_200_mb_and_measure(args: &[&str]) -> (u64, String, u64) {
    let out = Command::new(common::fthub())
        .args(["storage", "get", "datasets/big/blob.bin", "-o", "/dev/null"])
        .args(args)
        .stdout(Stdio::null())
        .output()
        .expect("fthub storage get");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let field = |k: &str| {
        err.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} in {err}"))
            .to_owned()
    };
    (
        field("bytes").parse().expect("bytes"),
        field("sha256"),
        field("peak_rss_kib").parse().expect("rss"),
    )
}

const BIG: usize = 200 * 1024 * 1024;
/// Far below 200 MB: the adapter holds at most two 4 MiB partitions in flight.
const RSS_BOUND_KIB: u64 = 96 * 1024;

fn big_blob() -> (Vec<u8>, String) {
    use sha2::Digest as _;
    let data: Vec<u8> = (0..BIG)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    let digest = sha2::Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (data, digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_blob_streams_out_of_azurite_within_a_fixed_memory_bound() {
    if !common::external("Azurite") {
        return;
    }
    let az = common::azurite();
    let (data, digest) = big_blob();
    let store = azure_store();
    store.ensure_container("datasets").await.expect("container");
    store
        .put("datasets", "big/blob.bin", &data, Condition::None)
        .await
        .expect("upload");
    drop(data);
    let (bytes, sha, rss) = stream_200_mb_and_measure(&["--storage", &az.connection_string]);
    assert_eq!((bytes, sha), (BIG as u64, digest));
    assert!(
        rss < RSS_BOUND_KIB,
        "peak RSS {rss} KiB while streaming 200 MB from Azurite"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_blob_streams_out_of_the_local_store_within_a_fixed_memory_bound() {
    let home = tempfile::tempdir().expect("home");
    let (data, digest) = big_blob();
    let path = home.path().join("storage/datasets/big/blob.bin");
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    std::fs::write(&path, &data).expect("write");
    drop(data);
    let (bytes, sha, rss) =
        stream_200_mb_and_measure(&["--home", home.path().to_str().expect("utf8")]);
    assert_eq!((bytes, sha), (BIG as u64, digest));
    assert!(
        rss < RSS_BOUND_KIB,
        "peak RSS {rss} KiB while streaming 200 MB from disk"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_sharing_one_storage_account_run_each_timer_occurrence_once() {
    if !common::external("Azurite") {
        return;
    }
    let az = common::azurite();
    let app = common::RecorderApp::new(
        &[(
            "Tick",
            serde_json::json!({"bindings": [{"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "*/1 * * * * *"}]}),
        )],
        serde_json::json!({}),
    );
    // Scaled-out instances of one app share the host id and the storage account.
    let host_id = format!("h{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let homes = [
        tempfile::tempdir().expect("home"),
        tempfile::tempdir().expect("home"),
    ];
    let mut hosts = Vec::new();
    for h in &homes {
        hosts.push(
            common::Dev::start_with_env(
                app.path(),
                h.path(),
                &["--storage", &az.connection_string],
                &[("AzureFunctionsWebHost__hostid", &host_id)],
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    drop(hosts);
    let ticks = app.invocations("Tick");
    let pids: std::collections::BTreeSet<_> = ticks.iter().map(|t| t["pid"].as_i64()).collect();
    assert!(ticks.len() >= 3, "the timer ran ({} ticks)", ticks.len());
    assert_eq!(
        pids.len(),
        1,
        "only the lease holder's handler ran the timer: {pids:?}"
    );
    let lock = format!("locks/{host_id}/Host.Functions.Tick.Listener");
    assert!(
        azure_store()
            .properties("azure-webjobs-hosts", &lock)
            .await
            .is_ok(),
        "the singleton lock lives in Azurite"
    );
}

#[test]
fn fthub_submit_streams_a_200_mb_dataset_into_azurite_within_a_fixed_memory_bound() {
    if !common::external("Azurite and GNU time") {
        return;
    }
    let az = common::azurite();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(azure_store().ensure_container("datasets"))
        .expect("container");
    let dir = tempfile::tempdir().expect("tmp");
    let sub = dir.path().join("big");
    std::fs::create_dir_all(&sub).expect("dir");
    std::fs::write(
        sub.join("manifest.json"),
        r#"{"training_file": "train.jsonl"}"#,
    )
    .expect("manifest");
    let line = br#"{"messages":[{"role":"user","content":"hello there"},{"role":"assistant","content":"general kenobi"}]}"#;
    let mut data = Vec::with_capacity(BIG + line.len());
    while data.len() < BIG {
        data.extend_from_slice(line);
        data.push(b'\n');
    }
    std::fs::write(sub.join("train.jsonl"), &data).expect("train");
    let project = format!("big{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let out = Command::new("/usr/bin/time")
        .args(["-f", "max_rss_kib=%M"])
        .arg(common::fthub())
        .arg("submit")
        .arg(&sub)
        // The upload's memory is measured here; local validation is `fthub validate`'s.
        .args([
            "--project",
            &project,
            "--no-validate",
            "--storage",
            &az.connection_string,
        ])
        .output()
        .expect("GNU time + fthub submit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rss: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("max_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in {stderr}"));
    assert!(
        rss < RSS_BOUND_KIB,
        "peak RSS {rss} KiB uploading {} MB",
        data.len() >> 20
    );
    let props = rt
        .block_on(azure_store().properties("datasets", &format!("{project}/big/train.jsonl")))
        .expect("uploaded");
    assert_eq!(props.content_length, data.len() as u64);
}
