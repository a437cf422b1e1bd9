//! The command line as a user meets it, against a scaffolded app run by a real `fthub dev`:
//! `init` makes an app `dev` runs at once; `submit` checks before it uploads and names the
//! run the pipeline then creates; `approve` refuses what it can check, waits for the
//! pipeline's answer and exits non-zero on a refusal; output is text by default, JSON on
//! request, uncoloured off a terminal, and a closed pipe is no panic.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn fthub(dir: &Path, args: &[&str]) -> Output {
    Command::new(common::fthub())
        .current_dir(dir)
        .args(args)
        .env_remove("FTHUB_HOME")
        .env_remove("FTHUB_URL")
        .env_remove("FTHUB_STORAGE")
        .env_remove("FTHUB_SERVICE_BUS")
        .env_remove("NO_COLOR")
        .output()
        .expect("fthub")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `fthub approve RUN --env ENV --approver WHO --key KEY EXTRA…` in `dir`.
fn approve(dir: &Path, run: &str, env: &str, who: &str, key: &str, extra: &[&str]) -> Output {
    let args = [
        &[
            "approve",
            run,
            "--env",
            env,
            "--approver",
            who,
            "--key",
            key,
        ][..],
        extra,
    ]
    .concat();
    fthub(dir, &args)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A copy of samples/classification with its manifest changed by `edit`.
fn submission(root: &Path, name: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    let sample = common::repo().join("samples/classification");
    for f in ["train.jsonl", "eval.jsonl"] {
        std::fs::copy(sample.join(f), dir.join(f)).expect("copy");
    }
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sample.join("manifest.json")).expect("manifest"))
            .expect("json");
    edit(&mut m);
    std::fs::write(dir.join("manifest.json"), m.to_string()).expect("write");
    dir.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scaffolded_app_takes_a_checked_submission_and_an_approval_that_waits_for_its_answer() {
    let root = tempfile::tempdir().expect("root");
    let app = root.path().join("app");
    let out = fthub(root.path(), &["init", app.to_str().expect("utf-8")]);
    assert_eq!(code(&out), 0, "{:?}", text(&out));
    assert!(
        text(&out).0.contains("keys/quality-lead.key"),
        "{:?}",
        text(&out)
    );
    // The scaffold runs at once: its own topology, fresh approver keys.
    let home = app.join(".fthub");
    let dev = common::Dev::start(&app, &home, &[]).await;
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("dev.json")).expect("dev.json"))
            .expect("json");
    assert_eq!(marker["url"], dev.url(""));
    assert!(
        marker["dashboard"]
            .as_str()
            .is_some_and(|d| d.ends_with("/api/status/ui/runs"))
    );

    // A manifest typo is refused before anything is uploaded.
    let typo = submission(root.path(), "typo", |m| {
        m["base_modle"] = m["base_model"].take();
        m.as_object_mut().expect("object").remove("base_model");
    });
    let out = fthub(&app, &["submit", &typo, "--project", "acme"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(code(&out), 1, "{stdout} {stderr}");
    assert!(
        stderr.contains("base_modle") && stderr.contains("not uploaded"),
        "{stderr}"
    );
    let listed = fthub(&app, &["storage", "ls", "datasets", "--home", ".fthub"]);
    assert!(
        !text(&listed).0.contains("typo"),
        "nothing uploaded: {:?}",
        text(&listed)
    );

    // A good submission names the run the pipeline creates.
    let good = submission(root.path(), "s1", |_| {});
    let out = fthub(&app, &["submit", &good, "--project", "acme"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(code(&out), 0, "{stdout} {stderr}");
    let run = stdout
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the run id is printed")
        .to_owned();
    assert!(run.starts_with("acme-s1-"), "{stdout}");
    let out = fthub(&app, &["wait", &run, "--for", "dev", "--timeout", "180"]);
    assert_eq!(code(&out), 0, "{:?}", text(&out));

    // The same data with a corrected manifest is a new run, and says which it replaces.
    let changed = submission(root.path(), "s1-again", |m| m["seed"] = 8.into());
    std::fs::remove_dir_all(root.path().join("s1")).expect("rm");
    std::fs::rename(&changed, root.path().join("s1")).expect("mv");
    let out = fthub(&app, &["submit", &good, "--project", "acme"]);
    let (stdout, _) = text(&out);
    assert_eq!(code(&out), 0, "{stdout}");
    assert!(
        stdout.contains("a new run") && stdout.contains(&run),
        "{stdout}"
    );
    let second = stdout
        .lines()
        .find_map(|l| l.strip_prefix("run "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the new run id")
        .to_owned();
    assert_ne!(second, run);

    // approve: what can be checked is checked before anything is published.
    let key = app.join("keys/quality-lead.key");
    let key = key.to_str().expect("utf-8");
    let demo_key = common::repo().join("samples/keys/quality-lead.key");
    for (args, says) in [
        (
            vec![
                run.as_str(),
                "--env",
                "Prod",
                "--approver",
                "quality-lead",
                "--key",
                key,
            ],
            "not an environment",
        ),
        (
            vec![
                run.as_str(),
                "--env",
                "test",
                "--approver",
                "bob",
                "--key",
                key,
            ],
            "its approvers are: quality-lead",
        ),
        (
            vec![
                run.as_str(),
                "--env",
                "test",
                "--approver",
                "quality-lead",
                "--key",
                demo_key.to_str().expect("utf-8"),
            ],
            "not quality-lead's key",
        ),
        (
            vec![
                "nosuchrun",
                "--env",
                "test",
                "--approver",
                "quality-lead",
                "--key",
                key,
            ],
            "no run nosuchrun",
        ),
    ] {
        let out = fthub(&app, &[&["approve"][..], &args].concat());
        let (_, stderr) = text(&out);
        assert_eq!(code(&out), 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("not published") && stderr.contains(says),
            "{args:?}: {stderr}"
        );
    }
    // The pipeline's refusal is waited for and reported.
    let rm_key = app.join("keys/release-manager.key");
    let out = approve(
        &app,
        &run,
        "prod",
        "release-manager",
        rm_key.to_str().expect("utf-8"),
        &[],
    );
    let (_, stderr) = text(&out);
    assert_eq!(code(&out), 1, "{stderr}");
    assert!(
        stderr.contains("refused by the pipeline") && stderr.contains("not yet in test"),
        "{stderr}"
    );
    // An approval waits until the promotion is verified in every region.
    let out = approve(&app, &run, "test", "quality-lead", key, &["--json"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(code(&out), 0, "{stdout} {stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert!(
        v["outcome"]
            .as_str()
            .is_some_and(|o| o.contains("is in test")),
        "{v}"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&fthub(&app, &["status", &run, "--json"]).stdout).expect("json");
    assert_eq!(status["run"]["environments"]["test"]["status"], "healthy");

    // The corrected run follows the first into Test; a rollback is followed to its answer,
    // and rolling back the run that no longer serves is refused.
    let out = fthub(&app, &["wait", &second, "--for", "dev", "--timeout", "180"]);
    assert_eq!(code(&out), 0, "{:?}", text(&out));
    // The same data and manifest again, once the run exists: it continues, nothing new.
    let out = fthub(&app, &["submit", &good, "--project", "acme"]);
    assert!(
        text(&out)
            .0
            .contains(&format!("run {second} exists already")),
        "{:?}",
        text(&out)
    );
    let out = approve(&app, &second, "test", "quality-lead", key, &[]);
    assert_eq!(code(&out), 0, "{:?}", text(&out));
    let rollback = || approve(&app, &second, "test", "quality-lead", key, &["--rollback"]);
    let out = rollback();
    let (stdout, stderr) = text(&out);
    assert_eq!(code(&out), 0, "{stdout} {stderr}");
    assert!(
        stdout.contains("rolled back") && stdout.contains(&run),
        "{stdout}"
    );
    let out = rollback();
    let (_, stderr) = text(&out);
    assert_eq!(code(&out), 1, "{stderr}");
    assert!(stderr.contains("refused by the pipeline"), "{stderr}");

    // Output: text by default (uncoloured off a terminal), "not found" is a no, and a
    // reader that goes away is no panic.
    let out = fthub(&app, &["status", &run]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("stage      test") && !stdout.contains('\x1b'),
        "{stdout}"
    );
    assert!(stdout.lines().count() < 40, "a screenful: {stdout}");
    let out = fthub(&app, &["status", "nosuchrun"]);
    assert_eq!(code(&out), 1);
    assert!(
        text(&out).1.contains("no run nosuchrun"),
        "{:?}",
        text(&out)
    );
    for args in [
        vec!["status", run.as_str(), "--json"],
        vec!["storage", "ls", "datasets", "--json", "--home", ".fthub"],
    ] {
        let mut child = Command::new(common::fthub())
            .current_dir(&app)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // The reader is gone before the first write, as after `head -1` has its line.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            out.status.code().is_some_and(|c| c == 0),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
    // A closed stderr is no panic either (`fthub status nosuchrun 2>&1 | head -0`).
    let mut child = Command::new(common::fthub())
        .current_dir(&app)
        .args(["status", "nosuchrun"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stderr.take());
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{:?}", out.status);
    // `--output json` is `--json`.
    let out = fthub(&app, &["status", &run, "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["run"]["id"], run.as_str());
    // With --json a "no" is a JSON document too.
    let out = fthub(&app, &["status", "nosuchrun", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["error"], "no");
    drop(dev);
}

#[test]
fn submit_refuses_a_home_that_no_host_watches() {
    let root = tempfile::tempdir().expect("root");
    let good = submission(root.path(), "s1", |_| {});
    let out = fthub(root.path(), &["submit", &good, "--project", "acme"]);
    let (_, stderr) = text(&out);
    assert_eq!(code(&out), 2, "{stderr}");
    assert!(stderr.contains("no `fthub dev` watches"), "{stderr}");
    assert!(
        !root.path().join(".fthub/storage").exists(),
        "nothing written"
    );
}

#[test]
fn keygen_adds_an_approver_to_a_topology_that_stays_loadable() {
    let root = tempfile::tempdir().expect("root");
    let app = root.path().join("app");
    assert_eq!(
        code(&fthub(root.path(), &["init", app.to_str().expect("utf-8")])),
        0
    );
    let topology = app.join("topology.json");
    let t = topology.to_str().expect("utf-8");
    let out = fthub(
        &app,
        &[
            "keygen",
            "--name",
            "second-reviewer",
            "--out",
            "keys",
            "--topology",
            t,
            "--env",
            "test",
        ],
    );
    assert_eq!(code(&out), 0, "{:?}", text(&out));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&topology).expect("topology")).expect("json");
    let names: Vec<&str> = v["environments"]["test"]["approvers"]
        .as_array()
        .expect("approvers")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["quality-lead", "second-reviewer"]);
    assert!(app.join("keys/second-reviewer.key").exists());
    // The same name twice is a no, and leaves no second key file behind.
    let out = fthub(
        &app,
        &[
            "keygen",
            "--name",
            "second-reviewer",
            "--out",
            "elsewhere",
            "--topology",
            t,
            "--env",
            "test",
        ],
    );
    assert_eq!(code(&out), 1, "{:?}", text(&out));
    assert!(!app.join("elsewhere").exists());
}
