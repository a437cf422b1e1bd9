//! Promises an operator relies on, proven end to end: the story reaches Prod and keepalive
//! succeeds with 20% of Azure OpenAI requests failing, with every effect happening once; no
//! key or token reaches anything the system writes or prints; HTTP functions require a key.

use crate::common;

use std::process::Command;

/// A credential nobody would write by accident, so finding it anywhere is a leak.
const CANARY_KEY: &str = "sk-canary-5f0c2e7a9b1d4e6f8a3c";

#[test]
fn under_twenty_percent_faults_the_story_reaches_prod_with_each_effect_once_and_no_secret_leaks() {
    let home = tempfile::tempdir().expect("tmp");
    let out = Command::new(common::fthub())
        .args([
            "demo",
            "--training-seconds",
            "1",
            "--faults",
            "0.2",
            "--home",
        ])
        .arg(home.path())
        .current_dir(common::repo())
        // Everything at debug level, so every log line is there to be searched.
        .env("FTHUB_LOG", "debug")
        .env("FTHUB_EMULATOR_KEY", CANARY_KEY)
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "demo under faults failed:\n{stdout}\n{stderr}"
    );
    for expected in [
        "injecting faults on every account: 20%",
        "prod/eastus2: ft-support-routing on prod-eastus2 (verified)",
        "after 16 days all 10 deployments of both projects are alive",
        "failed by injection and retried; 2 jobs,",
        "each once",
        "All steps passed",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let injected: usize = stdout
        .split(" failed by injection")
        .next()
        .and_then(|s| s.rsplit(", ").next())
        .and_then(|s| s.trim().parse().ok())
        .expect("injected count");
    assert!(injected > 0, "faults were actually injected");

    // Secrets: the API key in use and the approvers' private keys.
    let mut secrets = vec![CANARY_KEY.to_owned()];
    for k in ["quality-lead", "release-manager", "intruder"] {
        let text = std::fs::read_to_string(common::repo().join(format!("samples/keys/{k}.key")))
            .expect("key");
        secrets.push(text.trim().to_owned());
    }
    let mut searched = 0;
    for (what, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "a secret appears in the demo's {what}"
            );
        }
    }
    for f in common::files_under(home.path()) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).expect("read")).into_owned();
        searched += 1;
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "a secret appears in {}",
                f.display()
            );
        }
    }
    assert!(
        searched > 30,
        "the demo wrote runs, audit, reports, bus and host records ({searched} files)"
    );
    assert!(
        stdout.lines().count() + stderr.lines().count() > 100,
        "debug logs were produced and searched"
    );
}

/// The search above means something only if the handler really sends the planted key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planted_api_key_is_the_one_the_handler_sends() {
    use fthub::local::emulator::{
        Emulator, api_key_fingerprint, builtin_accounts, credential_fingerprint, world::Timings,
    };
    let emulator =
        fthub::local::emulator::spawn(0, Emulator::new(builtin_accounts(), Timings::default()))
            .await
            .expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let serve = common::Serve::start_with_env(
        home.path(),
        &[
            ("FTHUB_EMULATOR_URL", &emulator),
            ("FTHUB_EMULATOR_KEY", CANARY_KEY),
        ],
    )
    .await;
    let (status, _, body) = serve
        .invoke("KeepWarm", common::fixture("timer_past_due.json"))
        .await;
    assert_eq!(status, 200, "{body}");
    let log = common::emulator_requests(&emulator).await;
    assert!(!log.is_empty(), "KeepWarm called the emulated accounts");
    // The data plane gets it as `api-key`; ARM gets Entra-shaped tokens signed with it, one
    // per tenant of the estate (the key itself never travels to ARM).
    let tokens = fthub::adapters::azure::LocalTokens::new(
        "contoso",
        fthub::adapters::azure::Secret::new(CANARY_KEY),
    );
    let scope = fthub::adapters::azure::ARM_SCOPE;
    let planted = [
        api_key_fingerprint(CANARY_KEY),
        credential_fingerprint(tokens.issue(scope, None).expose()),
        credential_fingerprint(tokens.issue(scope, Some("fabrikam")).expose()),
    ];
    for r in &log {
        assert!(
            planted.iter().any(|p| r["credential"] == p.as_str()),
            "a request without the planted key: {r}"
        );
    }
}

#[test]
fn every_http_function_requires_a_function_key() {
    let mut http = 0;
    for entry in std::fs::read_dir(common::repo().join("functions")).expect("functions") {
        let path = entry.expect("entry").path().join("function.json");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        for b in v["bindings"].as_array().expect("bindings") {
            if b["type"] == "httpTrigger" {
                http += 1;
                assert!(
                    b["authLevel"] == "function" || b["authLevel"] == "admin",
                    "{} is reachable without a key",
                    path.display()
                );
            }
        }
    }
    assert_eq!(http, 2, "Status and SubmitRun");
}
