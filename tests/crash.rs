//! Crashes: the host and its handler are SIGKILLed together at random points of the story
//! and restarted on the same state, `FTHUB_CRASH_POINTS` times (default 50). The Azure
//! OpenAI emulator runs on its own, as Azure would, so only our side dies. The run must end
//! exactly as an undisturbed run does — in Prod, deployed in every region of every
//! environment, one fine-tuning job — with no message dead-lettered.
//!
//! The seed is printed; `FTHUB_CRASH_SEED` replays a sequence.

mod common;

use std::time::{Duration, Instant};

use fthub::local::emulator::world::Timings;
use fthub::local::emulator::{Emulator, builtin_accounts};
use serde_json::Value;

struct Story {
    home: tempfile::TempDir,
    emulator: String,
    approved: Vec<String>,
}

impl Story {
    fn run_doc(&self) -> Option<Value> {
        let dir = self.home.path().join("storage/state/runs");
        let entry = std::fs::read_dir(dir).ok()?.flatten().next()?;
        serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()
    }

    /// What a user and the timers do next for the run's stage: approvals are signed once per
    /// environment (they sit on the durable bus while the host is down).
    async fn advance(&mut self, dev: &common::Dev) {
        let stage = self
            .run_doc()
            .map(|r| r["stage"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        let id = self
            .run_doc()
            .and_then(|r| r["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        match stage.as_str() {
            // The reconciler's timer, as the host fires it every minute.
            "uploading" | "training" | "evaluating" | "evaluated" => {
                let _ = dev
                    .client
                    .post(dev.url("/admin/functions/TrainingMonitor"))
                    .json(&serde_json::json!({"input": ""}))
                    .send()
                    .await;
            }
            "dev" | "test" => {
                let (env, approver) = if stage == "dev" {
                    ("test", "quality-lead")
                } else {
                    ("prod", "release-manager")
                };
                if !self.approved.iter().any(|e| e == env) {
                    let out = tokio::process::Command::new(common::fthub())
                        .args([
                            "approve",
                            &id,
                            "--env",
                            env,
                            "--approver",
                            approver,
                            "--reason",
                            "crash test",
                        ])
                        .arg("--key")
                        .arg(common::repo().join(format!("samples/keys/{approver}.key")))
                        .arg("--home")
                        .arg(self.home.path())
                        .output()
                        .await
                        .expect("fthub approve");
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    self.approved.push(env.to_owned());
                }
            }
            // Keepalive runs are killed too; they must not disturb the final state.
            "prod" => {
                let _ = dev
                    .client
                    .post(dev.url("/admin/functions/KeepWarm"))
                    .json(&serde_json::json!({"input": ""}))
                    .send()
                    .await;
            }
            _ => {}
        }
    }
}

async fn start(story: &Story) -> common::Dev {
    common::Dev::start_with_env(
        &common::repo(),
        story.home.path(),
        // A killed host's messages come back when their lock expires: 3 s instead of the
        // queue's minutes, so the story moves on between kills.
        &["--emulator-url", &story.emulator, "--lock-duration", "3"],
        // A crashed invocation's claim is taken over after 5 s instead of 11 minutes: every
        // effect here completes in well under a second.
        &[
            ("FTHUB_CLAIM_TTL_SECONDS", "5"),
            ("FTHUB_CLAIM_WAIT_SECONDS", "1"),
            // The reconciler re-drives a step idle for 5 s: whatever a kill lost moves on.
            ("FTHUB_RECONCILE_GRACE_SECONDS", "5"),
        ],
    )
    .await
}

fn files_named(dir: &std::path::Path, part: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_named(&p, part));
        } else if p.to_string_lossy().contains(part) {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_host_at_random_points_ends_in_the_same_final_state() {
    let points: usize = std::env::var("FTHUB_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("FTHUB_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("crash harness: {points} kill points, seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);

    let t = Timings {
        file_processing_ms: 100,
        job_queue_ms: 100,
        job_training_ms: 1500,
        deployment_ms: 100,
        ..Timings::default()
    };
    let emulator = fthub::local::emulator::spawn(0, Emulator::new(builtin_accounts(), t))
        .await
        .expect("emulator");
    let mut story = Story {
        home: tempfile::tempdir().expect("home"),
        emulator,
        approved: Vec::new(),
    };

    let out = std::process::Command::new(common::fthub())
        .arg("submit")
        .arg(common::repo().join("samples/classification"))
        .args([
            "--project",
            "crash",
            "--submission",
            "s1",
            "--as",
            "data-scientist",
            "--home",
        ])
        .arg(story.home.path())
        .output()
        .expect("submit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let started = Instant::now();
    let mut stages = Vec::new();
    for _ in 0..points {
        let mut dev = start(&story).await;
        let until = Instant::now() + Duration::from_millis(rng.u64(50..1200));
        while Instant::now() < until {
            story.advance(&dev).await;
            tokio::time::sleep(Duration::from_millis(rng.u64(10..150))).await;
        }
        dev.crash();
        stages.push(
            story
                .run_doc()
                .map(|r| r["stage"].as_str().unwrap_or("").to_owned())
                .unwrap_or_else(|| "-".into()),
        );
    }
    eprintln!("killed at stages: {stages:?}");

    // Undisturbed from here on: the story must still finish.
    let dev = start(&story).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if story.run_doc().is_some_and(|r| r["stage"] == "prod") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not reach prod: {:?}",
            story.run_doc().map(|r| r["stage"].clone())
        );
        story.advance(&dev).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The same final state as an undisturbed run.
    let run = story.run_doc().expect("run");
    for env in ["dev", "test", "prod"] {
        let regions = run["environments"][env]["regions"]
            .as_object()
            .unwrap_or_else(|| panic!("{env}: {run}"));
        assert_eq!(regions.len(), 2, "{env} in two regions: {regions:?}");
        for (region, r) in regions {
            assert_eq!(r["status"], "verified", "{env}/{region}: {r}");
        }
    }
    let history: Vec<String> = run["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|t| format!("{} -> {}: {}", t["from"], t["to"], t["detail"]))
        .collect();
    let mut unique = history.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        history.len(),
        "no transition twice: {history:?}"
    );
    let log: Vec<Value> = reqwest::get(format!("{}/_emulator/requests", story.emulator))
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    let jobs = log
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["status"].as_u64().is_some_and(|s| s < 300)
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("/fine_tuning/jobs?"))
        })
        .count();
    assert_eq!(jobs, 1, "one fine-tuning job however often the host died");
    // Nothing was lost: no dead-lettered message, no poisoned blob.
    let dead: Vec<_> = files_named(&story.home.path().join("bus"), "deadletter")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    let poison = files_named(story.home.path(), "poison");
    assert!(
        dead.is_empty() && poison.is_empty(),
        "dead letters {dead:?}, poison {poison:?}"
    );
    eprintln!(
        "crash harness: {points} kills, story finished {:.1} s after the first start, {} transitions, 1 job",
        started.elapsed().as_secs_f64(),
        history.len()
    );
    drop(dev);
}
