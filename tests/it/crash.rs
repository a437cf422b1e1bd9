//! Crashes: the host and its handler are SIGKILLed together at random points of the story
//! and restarted on the same state, `FTHUB_CRASH_POINTS` times (default 50). The Azure
//! OpenAI emulator runs on its own, as Azure would, so only our side dies. The run must end
//! exactly as an undisturbed run does — in Prod, deployed in every region of every
//! environment, one fine-tuning job, every held-out example answered once per model — with
//! no message dead-lettered.
//!
//! Kills are placed by observed progress, not by the clock: each kill point is a milestone of
//! the story (a stage, or a number of evaluation batches stored for a 2,000-example held-out
//! set), drawn at random, and the host dies a random few milliseconds after the run passes
//! it. So a slow machine changes when kills happen, never where. The seed is printed (also on
//! failure); `FTHUB_CRASH_SEED` replays a sequence.

use crate::common;

use std::time::{Duration, Instant};

use fthub::local::emulator::world::Timings;
use fthub::local::emulator::{Emulator, builtin_accounts};
use serde_json::Value;

struct Story {
    home: tempfile::TempDir,
    emulator: String,
    approved: Vec<String>,
    seed: u64,
}

/// Stages in the order a run passes them.
const ORDER: [&str; 8] = fthub::commands::ops::PROGRESS;

/// Held-out examples, evaluation batch size, and the batches stored over the two models
/// scored (candidate, base).
const EXAMPLES: usize = 2000;
const BATCH: usize = 100;
const BATCHES: u64 = (2 * EXAMPLES / BATCH) as u64;

impl Story {
    fn run_doc(&self) -> Option<Value> {
        let dir = self.home.path().join("storage/state/runs");
        let entry = std::fs::read_dir(dir).ok()?.flatten().next()?;
        serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()
    }

    fn stage(&self) -> String {
        self.run_doc()
            .map(|r| r["stage"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    }

    /// How far the story got: the stage's place, and while evaluating the batches stored.
    fn progress(&self) -> u64 {
        let Some(run) = self.run_doc() else { return 0 };
        let stage = run["stage"].as_str().unwrap_or("");
        let rank = ORDER
            .iter()
            .position(|s| *s == stage)
            .map_or(0, |p| p as u64 + 1);
        let eval = self
            .home
            .path()
            .join("storage/reports")
            .join(run["id"].as_str().unwrap_or(""))
            .join("eval");
        let batches = files_named(&eval, ".json")
            .iter()
            .filter(|p| !p.ends_with("plan.json"))
            .count() as u64;
        rank * 1000 + if rank == 4 { batches.min(BATCHES) } else { 0 }
    }

    /// Every milestone a kill may be placed at: each stage, and each evaluation batch.
    fn milestones() -> Vec<u64> {
        let mut m: Vec<u64> = (1..=8).map(|r| r * 1000).collect();
        m.extend((1..BATCHES).map(|b| 4000 + b));
        m.sort_unstable();
        m
    }

    /// Drives the story until it passes `target`, or fails the test (with the seed) when it
    /// makes no progress for two minutes.
    async fn drive_past(&mut self, dev: &common::Dev, target: u64, what: &str) {
        let mut last = (self.progress(), Instant::now());
        while self.progress() < target {
            self.advance(dev).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.progress();
            if now > last.0 {
                last = (now, Instant::now());
            }
            assert!(
                last.1.elapsed() < Duration::from_secs(120),
                "no progress for two minutes {what} (seed {}): stuck at {now} in {}: {:?}",
                self.seed,
                self.stage(),
                self.run_doc().map(|r| (
                    r["retry"].clone(),
                    r["stalled"].clone(),
                    r["waiting"].clone()
                ))
            );
        }
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
            "queued" | "uploading" | "training" | "evaluating" | "evaluated" => {
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
                            // The harness kills the host meanwhile; it follows the run itself.
                            "--no-wait",
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
        &[
            // The local estate with evaluation deployments large enough that 4,000 calls
            // are not held back by their rate limit.
            (
                "FTHUB_TOPOLOGY",
                story
                    .home
                    .path()
                    .join("topology.json")
                    .to_str()
                    .expect("utf-8"),
            ),
            // A live holder renews its claim every second; a killed one's goes stale in 3 s.
            ("FTHUB_CLAIM_TTL_SECONDS", "3"),
            ("FTHUB_CLAIM_WAIT_SECONDS", "1"),
            // The reconciler re-drives a step idle for 5 s: whatever a kill lost moves on.
            ("FTHUB_RECONCILE_GRACE_SECONDS", "5"),
            // Evaluation in batches of 100, pausing after a second: many invocations, each
            // resumed where the last stopped (or died).
            ("FTHUB_EVAL_BATCH", "100"),
            ("FTHUB_EVAL_BUDGET_SECONDS", "1"),
        ],
    )
    .await
}

/// Submits the classification sample with a 2,000-example held-out set of its classes.
fn submit(story: &Story) {
    let sample = common::repo().join("samples/classification");
    let dir = story.home.path().join("submission");
    std::fs::create_dir_all(&dir).expect("dir");
    for f in ["train.jsonl", "manifest.json"] {
        std::fs::copy(sample.join(f), dir.join(f)).expect("copy");
    }
    let eval = std::fs::read_to_string(sample.join("eval.jsonl")).expect("eval");
    let lines: Vec<&str> = eval.lines().collect();
    let mut big = String::new();
    for i in 0..EXAMPLES {
        let mut v: Value = serde_json::from_str(lines[i % lines.len()]).expect("json");
        let user = v["messages"][1]["content"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        v["messages"][1]["content"] = serde_json::json!(format!("{user} (case {i})"));
        big.push_str(&v.to_string());
        big.push('\n');
    }
    std::fs::write(dir.join("eval.jsonl"), big).expect("eval");
    let out = std::process::Command::new(common::fthub())
        .arg("submit")
        .arg(&dir)
        .args([
            "--project",
            "crash",
            "--submission",
            "s1",
            "--as",
            "data-scientist",
            // The hosts come and go from here on; the upload waits for the first.
            "--unwatched",
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
}

fn files_named(dir: &std::path::Path, part: &str) -> Vec<std::path::PathBuf> {
    common::files_under(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(part))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_host_at_random_points_of_progress_ends_in_the_same_final_state() {
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
    // Kill points: random milestones, in the order the story passes them.
    let milestones = Story::milestones();
    let mut targets: Vec<u64> = (0..points)
        .map(|_| milestones[rng.usize(..milestones.len())])
        .collect();
    targets.sort_unstable();

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
        seed,
    };
    let mut topology =
        serde_json::to_value(fthub::domain::topology::Topology::local("{emulator}")).expect("json");
    topology["deployment"]["evaluation_capacity"] = serde_json::json!(5000);
    std::fs::write(
        story.home.path().join("topology.json"),
        topology.to_string(),
    )
    .expect("topology");
    submit(&story);

    let started = Instant::now();
    let mut stages = Vec::new();
    for target in targets {
        let mut dev = start(&story).await;
        story.drive_past(&dev, target, "before a kill").await;
        // Land inside whatever step runs now.
        tokio::time::sleep(Duration::from_millis(rng.u64(0..120))).await;
        dev.crash();
        stages.push(format!("{}@{}", story.stage(), story.progress()));
    }
    eprintln!("killed at (stage@progress): {stages:?}");

    // Undisturbed from here on: the story must still finish.
    let dev = start(&story).await;
    story.drive_past(&dev, 8000, "after the last kill").await;
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
    let log = common::emulator_requests(&story.emulator).await;
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
    // Every held-out example answered once per model: a batch that died is scored again,
    // nothing stored is (at most the batches in flight at each kill).
    for dep in ["/deployments/eval-", "/deployments/base-"] {
        let answered = log
            .iter()
            .filter(|r| {
                r["status"] == 200
                    && r["path"]
                        .as_str()
                        .is_some_and(|p| p.contains(dep) && p.contains("/chat/"))
            })
            .count();
        assert!(
            (EXAMPLES..=EXAMPLES + BATCH * points).contains(&answered),
            "{dep}: {answered} answers for {EXAMPLES} examples (seed {seed})"
        );
    }
    let id = run["id"].as_str().unwrap_or("");
    let report: Value = serde_json::from_slice(
        &std::fs::read(
            story
                .home
                .path()
                .join(format!("storage/reports/{id}/evaluation.json")),
        )
        .expect("report"),
    )
    .expect("json");
    assert_eq!(report["examples"], EXAMPLES, "(seed {seed})");
    // Nothing was lost: no message dead-lettered (the recorders consume the dead-letter
    // subqueues, so look at the run's history too), no poisoned blob.
    let recorded: Vec<&Value> = run["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["to"] == "dead_lettered")
        .collect();
    assert!(
        recorded.is_empty(),
        "dead letters recorded on the run: {recorded:?} (seed {seed})"
    );
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
        "crash harness (seed {seed}): {points} kills, story finished {:.1} s after the first start, {} transitions, 1 job",
        started.elapsed().as_secs_f64(),
        history.len()
    );
    drop(dev);
}
