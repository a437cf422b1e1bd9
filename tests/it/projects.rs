//! Many lines of business on one estate, through `fthub dev` (the host stand-in, the local
//! bus, the real handler) against the emulator enforcing Azure's per-resource limits: five
//! fine-tuned deployments per account, one running and twenty queued jobs and fifty files
//! on the Hub.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::common::Dev;
use fthub::local::emulator::world::Timings;
use fthub::local::emulator::{Emulator, builtin_accounts};
use serde_json::{Value, json};

struct Estate {
    emulator: String,
    dev: Dev,
    home: tempfile::TempDir,
    client: reqwest::Client,
}

use crate::emulator_env::fast;

impl Estate {
    /// `fthub dev` on an emulator started here; `topology` (with `{emulator}` for its URL)
    /// replaces the built-in local topology.
    async fn start(timings: Timings, topology: Option<Value>) -> Self {
        let emulator = fthub::local::emulator::spawn(0, Emulator::new(builtin_accounts(), timings))
            .await
            .expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let mut env = vec![("FTHUB_RECONCILE_GRACE_SECONDS", "2".to_owned())];
        if let Some(t) = topology {
            let path = home.path().join("topology.json");
            std::fs::write(&path, t.to_string()).expect("topology");
            env.push(("FTHUB_TOPOLOGY", path.display().to_string()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let dev = Dev::start_with_env(
            &common::repo(),
            home.path(),
            &["--emulator-url", &emulator],
            &env,
        )
        .await;
        Self {
            emulator,
            dev,
            home,
            client: reqwest::Client::new(),
        }
    }

    /// Drops a submission as a data scientist does: data files, then the manifest.
    async fn drop(&self, project: &str, submission: &str, sample: &str) {
        common::drop_sample(self.home.path(), project, submission, sample).await;
    }

    async fn status(&self, path: &str) -> Value {
        self.client
            .get(self.dev.url(&format!("/api/status/{path}")))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json")
    }

    /// Every run document, read straight from storage.
    fn runs(&self) -> Vec<Value> {
        let dir = self.home.path().join("storage/state/runs");
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn run_of(&self, project: &str, submission: &str) -> Option<Value> {
        self.runs()
            .into_iter()
            .find(|r| r["project"] == project && r["submission"] == submission)
    }

    async fn tick(&self, function: &str) {
        let r = self
            .client
            .post(self.dev.url(&format!("/admin/functions/{function}")))
            .json(&json!({"input": ""}))
            .send()
            .await
            .expect("admin");
        assert_eq!(r.status().as_u16(), 202, "{function}");
    }

    /// Ticks the reconciler until `done` holds or `limit` passes.
    async fn until(&self, what: &str, limit: Duration, mut done: impl FnMut(&Self) -> bool) {
        // Everything a stuck run says about itself, for the failure message.
        let start = Instant::now();
        while !done(self) {
            if start.elapsed() >= limit {
                let stuck: Vec<Value> = self
                    .runs()
                    .into_iter()
                    .filter(|r| !matches!(stage(r), "dev" | "test" | "prod"))
                    .map(|r| {
                        let h = r["history"].as_array().cloned().unwrap_or_default();
                        json!({"id": r["id"], "stage": r["stage"], "waiting": r["waiting"],
                               "effects": r["effects"], "retry": r["retry"], "stalled": r["stalled"],
                               "eval_progress": r["eval_progress"], "last": h[h.len().saturating_sub(4)..]})
                    })
                    .collect();
                let hub = self.status("capacity").await;
                panic!(
                    "timed out waiting for {what}; runs not serving: {stuck:#?}\ncapacity: {hub:#}"
                );
            }
            self.tick("TrainingMonitor").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn emulator_log(&self) -> Vec<Value> {
        crate::common::emulator_requests(&self.emulator).await
    }

    async fn emulator_state(&self) -> Value {
        self.client
            .get(format!("{}/_emulator/state", self.emulator))
            .send()
            .await
            .expect("state")
            .json()
            .await
            .expect("json")
    }

    /// Dead letters: still in a dead-letter subqueue, or recorded on a run by the recorders
    /// that consume those subqueues.
    fn dead_letters(&self) -> usize {
        let bus = fthub::adapters::local::bus::LocalBus::new(self.home.path().join("bus"));
        let queued: usize = ["training-completed", "evaluation-completed", "approvals"]
            .iter()
            .map(|q| bus.dead_letters(q).map_or(0, |d| d.len()))
            .sum();
        let recorded = self
            .runs()
            .iter()
            .flat_map(|r| r["history"].as_array().cloned().unwrap_or_default())
            .filter(|t| t["to"] == "dead_lettered")
            .count();
        queued + recorded
    }

    async fn approve(&self, run_id: &str, env: &str, approver: &str, decision: &str) {
        let key = common::repo().join(format!("samples/keys/{approver}.key"));
        let mut args = vec![
            "approve".to_owned(),
            run_id.to_owned(),
            "--env".into(),
            env.into(),
            "--approver".into(),
            approver.into(),
            "--key".into(),
            key.display().to_string(),
            "--reason".into(),
            "ok".into(),
            // The test follows the run itself.
            "--no-wait".into(),
            "--home".into(),
            self.home.path().display().to_string(),
        ];
        if decision == "rollback" {
            args.push("--rollback".into());
        }
        let out = std::process::Command::new(common::fthub())
            .args(&args)
            .output()
            .expect("approve");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn stage(r: &Value) -> &str {
    r["stage"].as_str().unwrap_or("")
}

/// The dispatch order the runs record (`training slot granted (dispatch #N)`).
fn dispatch_order(runs: &[Value]) -> Vec<(u64, String, String)> {
    let mut out: Vec<(u64, String, String)> = runs
        .iter()
        .filter_map(|r| {
            let n = r["history"].as_array()?.iter().find_map(|t| {
                t["detail"]
                    .as_str()?
                    .strip_prefix("training slot granted (dispatch #")?
                    .trim_end_matches(')')
                    .parse()
                    .ok()
            })?;
            Some((
                n,
                r["project"].as_str()?.to_owned(),
                r["id"].as_str()?.to_owned(),
            ))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_five_datasets_dropped_at_once_all_reach_dev_within_the_hubs_limits_and_a_sixth_project_is_refused_a_slot()
 {
    let e = Estate::start(fast(), None).await;
    // Five projects, unevenly busy: 25 runs, each with two data files and a result file
    // (75 Hub files over time, against a limit of 50), five evaluation slots on the Hub.
    let plan = [
        ("alpha", 13),
        ("beta", 5),
        ("gamma", 4),
        ("delta", 2),
        ("eps", 1),
    ];
    let drops = plan
        .iter()
        .flat_map(|(p, n)| (0..*n).map(move |i| (*p, format!("s{i:02}"))));
    futures_util::future::join_all(drops.map(|(p, s)| {
        let e = &e;
        async move { e.drop(p, &s, "classification").await }
    }))
    .await;
    e.until("25 runs in dev", Duration::from_secs(420), |e| {
        let runs = e.runs();
        runs.len() == 25 && runs.iter().all(|r| stage(r) == "dev")
    })
    .await;
    let runs = e.runs();
    assert_eq!(e.dead_letters(), 0, "no message was dead-lettered");
    // Nothing stranded: no evaluation deployment left on the Hub, no slot held.
    let cap = e.status("capacity").await;
    assert_eq!(cap["hub"]["evaluation_slots"]["used"], 0, "{cap}");
    assert_eq!(cap["hub"]["jobs"]["held"], 0, "{cap}");
    let state = e.emulator_state().await;
    let hub = state["accounts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "hub"))
        .expect("hub")
        .clone();
    assert!(
        !hub["deployments"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["name"].as_str().is_some_and(|n| n.starts_with("eval-"))),
        "{hub}"
    );
    // The Hub never refused a file or a job for its limits (a 400 quotaExceeded, a 429 on
    // job creation), and its files were deleted after use.
    let log = e.emulator_log().await;
    let refused: Vec<&Value> = log
        .iter()
        .filter(|r| {
            let path = r["path"].as_str().unwrap_or("");
            r["status"] == 400 || (r["status"] == 429 && !path.contains("/chat/completions"))
        })
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
    // Evaluations pace themselves within each deployment's rate limits.
    let throttled = log.iter().filter(|r| r["status"] == 429).count();
    assert!(
        throttled <= 5,
        "{throttled} calls were refused for the rate limit"
    );
    let uploads = log
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("/hub/openai/files?"))
        })
        .count();
    assert_eq!(uploads, 50, "two data files per run, each uploaded once");
    let files_left = hub["files"].as_array().map_or(0, Vec::len);
    assert_eq!(
        files_left, 0,
        "every Hub file was deleted once its run no longer needed it"
    );
    // Every project holds one slot per Dev Spoke, with its newest run in it.
    let envs = e.status("environments").await;
    for region in ["swedencentral", "eastus2"] {
        let spoke = &envs["environments"]["dev"][region];
        assert_eq!(spoke["slots"]["used"], 5, "{spoke}");
        let projects: BTreeSet<&str> = spoke["deployments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["project"].as_str())
            .collect();
        assert_eq!(projects.len(), 5, "{spoke}");
    }
    // Fair order: while two projects both had runs waiting, neither got two slots in a row
    // over the other's waiting run (checked on the order the runs record).
    let order = dispatch_order(&runs);
    assert_eq!(order.len(), 25, "every run records its dispatch");
    let queued: BTreeMap<String, String> = runs
        .iter()
        .filter_map(|r| {
            Some((
                r["id"].as_str()?.to_owned(),
                r["queued_at"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let _ = queued;

    // A sixth project: every Dev Spoke is full, so its promotion is refused before any call.
    e.drop("zeta", "s00", "triage").await;
    e.until("zeta refused", Duration::from_secs(120), |e| {
        e.run_of("zeta", "s00")
            .is_some_and(|r| r["environments"]["dev"]["status"] == "refused")
    })
    .await;
    let zeta = e.run_of("zeta", "s00").expect("zeta");
    assert_eq!(stage(&zeta), "evaluated", "passed, waiting for a person");
    let why = zeta["environments"]["dev"]["refusal"]
        .as_str()
        .unwrap_or("");
    assert!(
        why.contains("has no free deployment slot") && why.contains("5 of 5"),
        "{why}"
    );
    for holder in ["ft-alpha", "ft-beta", "ft-gamma", "ft-delta", "ft-eps"] {
        assert!(why.contains(holder), "{why}");
    }
    let puts = e
        .emulator_log()
        .await
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/deployments/ft-zeta"))
        })
        .count();
    assert_eq!(puts, 0, "no ARM call for a promotion that cannot fit");
    assert_eq!(
        e.dead_letters(),
        0,
        "refused, not retried into a dead letter"
    );
    let active = e.status("runs?stage=evaluated").await;
    assert_eq!(active["runs"][0]["id"], zeta["id"]);
    // The reconciler does not keep trying: the run waits for a person.
    let before = zeta["history"].as_array().map_or(0, Vec::len);
    for _ in 0..3 {
        e.tick("TrainingMonitor").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let after = e.run_of("zeta", "s00").expect("zeta");
    assert_eq!(after["history"].as_array().map_or(0, Vec::len), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_with_one_run_is_not_starved_by_another_projects_ten() {
    // One running and one queued job on the Hub, and training that takes an hour of
    // emulated time, so the test decides when slots free.
    let mut topology: Value =
        serde_json::to_value(fthub::domain::topology::Topology::local("{emulator}")).expect("json");
    topology["hub_limits"] = json!({"running_jobs": 1, "queued_jobs": 1});
    let t = Timings {
        job_training_ms: 3_600_000,
        ..fast()
    };
    let e = Estate::start(t, Some(topology)).await;
    for i in 0..10 {
        e.drop("alpha", &format!("s{i:02}"), "classification").await;
    }
    e.until("alpha's ten runs", Duration::from_secs(120), |e| {
        e.runs().iter().filter(|r| r["project"] == "alpha").count() == 10
    })
    .await;
    let queue = e.status("capacity").await;
    assert_eq!(queue["hub"]["jobs"]["held"], 2, "{queue}");
    assert_eq!(queue["queue"].as_array().map(Vec::len), Some(8), "{queue}");
    e.drop("beta", "s00", "triage").await;
    e.until("beta queued", Duration::from_secs(60), |e| {
        e.run_of("beta", "s00")
            .is_some_and(|r| stage(&r) == "queued")
    })
    .await;
    let beta = e.run_of("beta", "s00").expect("beta");
    let position = e
        .status(&format!("runs/{}", beta["id"].as_str().expect("id")))
        .await;
    assert_eq!(position["queue_position"], 1, "next in line: {position}");
    // An hour of training passes twice: two slots free, one after the other.
    for _ in 0..3 {
        e.client
            .post(format!("{}/_emulator/clock", e.emulator))
            .json(&json!({"advance_seconds": 61 * 60}))
            .send()
            .await
            .expect("clock");
        e.tick("TrainingMonitor").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    e.until("beta started", Duration::from_secs(60), |e| {
        e.run_of("beta", "s00")
            .is_some_and(|r| stage(&r) != "queued")
    })
    .await;
    let order = dispatch_order(&e.runs());
    let projects: Vec<&str> = order.iter().map(|(_, p, _)| p.as_str()).collect();
    assert_eq!(
        &projects[..3],
        ["alpha", "alpha", "beta"],
        "beta's single run goes before alpha's third: {order:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_projects_share_one_estate_with_their_own_releases_baselines_rollbacks_and_keepalive()
{
    let e = Estate::start(fast(), None).await;
    let serving = |e: &Estate, project: &str, sub: &str, env: &str| {
        e.run_of(project, sub)
            .is_some_and(|r| r["environments"][env]["status"] == "healthy")
    };
    let id = |e: &Estate, project: &str, sub: &str| -> String {
        e.run_of(project, sub).expect("run")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    // alpha to Prod, beta to Test, gamma to Dev.
    e.drop("alpha", "v1", "classification").await;
    e.drop("beta", "v1", "triage").await;
    e.drop("gamma", "v1", "classification").await;
    e.until("three runs in dev", Duration::from_secs(180), |e| {
        ["alpha", "beta", "gamma"]
            .iter()
            .all(|p| serving(e, p, "v1", "dev"))
    })
    .await;
    let alpha1 = id(&e, "alpha", "v1");
    let beta1 = id(&e, "beta", "v1");
    e.approve(&alpha1, "test", "quality-lead", "approve").await;
    e.approve(&beta1, "test", "quality-lead", "approve").await;
    e.until("alpha and beta in test", Duration::from_secs(120), |e| {
        serving(e, "alpha", "v1", "test") && serving(e, "beta", "v1", "test")
    })
    .await;
    e.approve(&alpha1, "prod", "release-manager", "approve")
        .await;
    e.until("alpha in prod", Duration::from_secs(120), |e| {
        serving(e, "alpha", "v1", "prod")
    })
    .await;

    // alpha's second version is compared with alpha's Prod release, beta's with none.
    e.drop("alpha", "v2", "triage").await;
    e.drop("beta", "v2", "classification").await;
    e.until(
        "the second versions in dev",
        Duration::from_secs(180),
        |e| serving(e, "alpha", "v2", "dev") && serving(e, "beta", "v2", "dev"),
    )
    .await;
    let alpha2 = id(&e, "alpha", "v2");
    let beta2 = id(&e, "beta", "v2");
    let report = |run: &str| -> Value {
        let path = e
            .home
            .path()
            .join(format!("storage/reports/{run}/evaluation.json"));
        serde_json::from_slice(&std::fs::read(path).expect("report")).expect("json")
    };
    let labels = |run: &str| -> Vec<(String, String)> {
        report(run)["baselines"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                (
                    b["label"].as_str().unwrap_or("").to_owned(),
                    b["deployment"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    assert!(
        labels(&alpha2).contains(&("prod".into(), "ft-alpha".into())),
        "{:?}",
        labels(&alpha2)
    );
    assert!(
        !labels(&beta2).iter().any(|(l, _)| l == "prod"),
        "beta has no Prod release; another project's never stands in: {:?}",
        labels(&beta2)
    );
    assert!(
        report(&beta2)["baselines_not_scored"]
            .to_string()
            .contains("project beta has no Prod release yet")
    );
    // alpha's v2 replaces v1 in Dev, in place; v1 is marked superseded there.
    let alpha1_doc = e.run_of("alpha", "v1").expect("alpha v1");
    assert_eq!(alpha1_doc["environments"]["dev"]["status"], "superseded");
    assert_eq!(alpha1_doc["environments"]["prod"]["status"], "healthy");

    // Rollbacks are per project: alpha v2 to Test, then rolled back; beta in Test untouched.
    e.approve(&alpha2, "test", "quality-lead", "approve").await;
    e.until("alpha v2 in test", Duration::from_secs(120), |e| {
        serving(e, "alpha", "v2", "test")
    })
    .await;
    e.approve(&alpha2, "test", "quality-lead", "rollback").await;
    e.until("alpha rolled back in test", Duration::from_secs(120), |e| {
        serving(e, "alpha", "v1", "test")
            && e.run_of("alpha", "v2")
                .is_some_and(|r| r["environments"]["test"]["status"] == "rolled_back")
    })
    .await;
    let envs = e.status("environments").await;
    for region in ["swedencentral", "northcentralus"] {
        let spoke = &envs["environments"]["test"][region];
        let of = |project: &str| {
            spoke["deployments"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|d| d["project"] == project)
                .map(|d| d["run_id"].as_str().unwrap_or("").to_owned())
        };
        assert_eq!(of("alpha").as_deref(), Some(alpha1.as_str()), "{spoke}");
        assert_eq!(of("beta").as_deref(), Some(beta1.as_str()), "{spoke}");
    }
    // A second rollback has nothing older than v1 to go back to: refused and recorded.
    e.approve(&alpha1, "test", "quality-lead", "rollback").await;
    e.until("the refusal", Duration::from_secs(60), |e| {
        e.run_of("alpha", "v1").is_some_and(|r| {
            r["history"]
                .to_string()
                .contains("no previous version to roll back to")
        })
    })
    .await;

    // Every project's deployments are tracked and shown; gateways get a pool per project.
    let endpoints = e.status("endpoints").await;
    for (project, envs) in [
        ("alpha", &["dev", "test", "prod"][..]),
        ("beta", &["dev", "test"]),
        ("gamma", &["dev"]),
    ] {
        for env in envs {
            assert_eq!(
                endpoints["endpoints"][project][env]
                    .as_array()
                    .map(Vec::len),
                Some(2),
                "{project}/{env}: {endpoints}"
            );
        }
    }
    let projects = e.status("projects").await;
    let names: BTreeSet<&str> = projects["projects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["alpha", "beta", "gamma"]));
    // The same views from the command line, as tables.
    let cli = |what: &str| {
        let out = std::process::Command::new(common::fthub())
            .args(["status", what, "--url", &e.dev.url("")])
            .output()
            .expect("fthub status");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = cli("projects");
    for p in ["alpha", "beta", "gamma", "ft-gamma"] {
        assert!(table.contains(p), "{table}");
    }
    let table = cli("environments");
    assert_eq!(
        table.lines().filter(|l| l.contains(" alpha ")).count(),
        6,
        "alpha on every Spoke: {table}"
    );
    let table = cli("capacity");
    assert!(
        table.contains("dev-eastus2") && table.contains("3/5"),
        "{table}"
    );

    // Each project's deployment deleted behind the pipeline's back is restored by KeepWarm.
    let state = e.emulator_state().await;
    let ids: BTreeMap<String, String> = state["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or("").to_owned(),
                a["resource_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let deleted = [
        ("prod-swedencentral", "ft-alpha"),
        ("test-northcentralus", "ft-beta"),
        ("dev-eastus2", "ft-gamma"),
    ];
    for (account, dep) in deleted {
        let r = e
            .client
            .delete(format!(
                "{}/arm{}/deployments/{dep}?api-version=2024-10-01",
                e.emulator, ids[account]
            ))
            .bearer_auth("someone")
            .send()
            .await
            .expect("delete");
        assert!(r.status().is_success());
    }
    e.tick("KeepWarm").await;
    let start = Instant::now();
    loop {
        let envs = e.status("environments").await;
        let restored = deleted.iter().all(|(account, dep)| {
            envs["environments"]
                .as_object()
                .into_iter()
                .flat_map(|o| o.values())
                .flat_map(|env| env.as_object().into_iter().flat_map(|r| r.values()))
                .filter(|s| s["account"] == *account)
                .flat_map(|s| s["deployments"].as_array().cloned().unwrap_or_default())
                .any(|d| d["deployment"] == *dep && d["restorations"] == 1)
        });
        if restored {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not restored: {envs:#}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let state = e.emulator_state().await;
    for (account, dep) in deleted {
        let a = state["accounts"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == account))
            .expect("account");
        assert!(
            a["deployments"]
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x["name"] == dep)),
            "{account}/{dep} is back"
        );
    }
    assert_eq!(e.dead_letters(), 0);
}
