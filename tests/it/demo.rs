//! `fthub demo`, the README's main command, run as a user runs it: every step of the story
//! must happen and the command must exit 0.

use std::process::Command;

#[test]
fn the_demo_walks_the_whole_story_and_exits_zero() {
    let home = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_fthub"))
        .args(["demo", "--training-seconds", "1", "--home"])
        .arg(home.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("FTHUB_LOG", "error")
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "[3] DatasetArrived queues the submission; ValidateSubmission validates it",
        "valid training examples",
        "job status: succeeded",
        "→ passed",
        "dev/eastus2: ft-support-routing on dev-eastus2 (verified)",
        "dev/swedencentral: ft-support-routing on dev-swedencentral (verified)",
        "test/northcentralus: ft-support-routing on test-northcentralus (verified)",
        "refused: prod Approve: the signature does not verify",
        "prod/eastus2: ft-support-routing on prod-eastus2 (verified)",
        "dev/eastus2: ft-claims-triage on dev-eastus2 (verified)",
        "test/swedencentral: ft-claims-triage on test-swedencentral (verified)",
        "support-routing's Prod model is not one of them",
        "project claims-triage (ft-claims-triage) serves in dev, test",
        "project support-routing (ft-support-routing) serves in dev, test, prod",
        "day 8: test-northcentralus/ft-claims-triage deleted behind the pipeline's back",
        "after 16 days all 10 deployments of both projects are alive",
        "2 jobs",
        "All steps passed",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The reports the demo points to exist, for both projects' runs.
    let reports = home.path().join("storage/reports");
    let runs: Vec<_> = std::fs::read_dir(&reports)
        .expect("reports")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in &runs {
        for f in [
            "validation.json",
            "validation.md",
            "results.csv",
            "evaluation.json",
            "evaluation.md",
        ] {
            assert!(run.join(f).is_file(), "{}: {f}", run.display());
        }
    }
}
