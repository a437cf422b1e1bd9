//! `fthub keygen` (an approver key the rest of the pipeline accepts) and shell completions.

use std::process::Command;

#[test]
fn keygen_writes_a_private_key_file_and_prints_a_public_key_that_verifies_its_signatures() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_fthub"))
            .args(["keygen", "--name", "alice", "--out"])
            .arg(dir.path())
            .output()
            .expect("keygen")
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(printed["name"], "alice");
    let public =
        fthub::domain::approval::parse_public_key(printed["public_key"].as_str().expect("key"))
            .expect("valid public key");
    let path = dir.path().join("alice.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path)
                .expect("key file")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let secret =
        fthub::domain::approval::parse_signing_key(&std::fs::read_to_string(&path).expect("read"))
            .expect("secret key");
    assert_eq!(
        secret.verifying_key(),
        public,
        "the printed key belongs to the written secret"
    );
    assert!(
        !run().status.success(),
        "an existing key is never overwritten"
    );
}

#[test]
fn shell_completions_name_every_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_fthub"))
        .args(["completions", "bash"])
        .output()
        .expect("fthub completions");
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "serve",
        "dev",
        "demo",
        "submit",
        "approve",
        "status",
        "storage",
        "validate",
        "keygen",
        "init",
        "wait",
        "runs",
        "deadletters",
    ] {
        assert!(
            script.contains(sub),
            "{sub} missing from the completion script"
        );
    }
}
