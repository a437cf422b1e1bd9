//! Hostile input: the dataset validator, the envelope decoder and the approval verifier
//! return for anything (the same entry points the cargo-fuzz targets in `fuzz/` drive, here
//! with a short random budget), and a 200 MB single-line dataset is refused in bounded
//! memory.

use crate::common;

use std::io::Write as _;
use std::process::Command;

use proptest::prelude::*;

/// Inputs shaped like what each parser expects, with hostile pieces mixed in.
fn hostile_fragments() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"\xEF\xBB\xBF{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}]}\r\n".to_vec(),
        b"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}\n".to_vec(),
        b"{\"input\":{\"messages\":[]},\"preferred_output\":[{\"role\":\"assistant\"}],\"non_preferred_output\":7}\n".to_vec(),
        b"{\"Data\":{\"event\":\"{\\\"subject\\\":\\\"/blobServices/default/containers/datasets/blobs/../../etc/passwd\\\"}\"},\"Metadata\":{}}".to_vec(),
        b"{\"Data\":{\"message\":\"\\\"\\\\u0000\\\"\"},\"Metadata\":{\"DeliveryCount\":\"NaN\"}}".to_vec(),
        b"{\"approval\":{\"run_id\":\"r\",\"environment\":\"prod\",\"decision\":\"approve\",\"approver\":\"release-manager\",\"reason\":\"\",\"issued_at\":\"9999-12-31T23:59:59Z\",\"nonce\":\"n\"},\"signature\":\"AAAA\"}".to_vec(),
        b"{\"messages\":[{\"role\":\"assistant\",\"content\":\"x\",\"weight\":1e308}]}".to_vec(),
    ];
    // Deep nesting: serde_json's recursion limit must refuse it, not the stack.
    v.push(
        [
            b"{\"messages\":".as_slice(),
            &b"[".repeat(100_000),
            &b"]".repeat(100_000),
            b"}",
        ]
        .concat(),
    );
    v.push(
        b"{\"Data\":"
            .iter()
            .chain(b"{\"a\":".repeat(50_000).iter())
            .copied()
            .collect(),
    );
    v
}

#[test]
fn known_hostile_inputs_are_handled_without_panicking() {
    for f in hostile_fragments() {
        fthub::fuzzing::validator(&f);
        fthub::fuzzing::envelope(&f);
        fthub::fuzzing::approval(&f);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_any_parser(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fthub::fuzzing::validator(&data);
        fthub::fuzzing::envelope(&data);
        fthub::fuzzing::approval(&data);
    }

    #[test]
    fn spliced_hostile_fragments_never_panic_any_parser(
        picks in proptest::collection::vec((0usize..9, 0usize..64, any::<u8>()), 1..6)
    ) {
        let frags = hostile_fragments();
        let mut data = Vec::new();
        for (i, cut, byte) in picks {
            let f = &frags[i % frags.len()];
            data.extend_from_slice(&f[..f.len().min(cut * 16 + 1)]);
            data.push(byte);
        }
        fthub::fuzzing::validator(&data);
        fthub::fuzzing::envelope(&data);
        fthub::fuzzing::approval(&data);
    }
}

#[test]
fn a_200_mb_single_line_dataset_is_refused_in_bounded_memory() {
    if !common::external("GNU time") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("one-line.jsonl");
    let mut f = std::fs::File::create(&path).expect("create");
    // A valid example, then one 200 MB line with no newline anywhere, then another example.
    let ok = b"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}]}\n";
    f.write_all(ok).expect("write");
    f.write_all(b"{\"messages\":[{\"role\":\"user\",\"content\":\"")
        .expect("write");
    let block = vec![b'a'; 1 << 20];
    for _ in 0..200 {
        f.write_all(&block).expect("write");
    }
    f.write_all(b"\"}]}\n").expect("write");
    f.write_all(ok).expect("write");
    drop(f);
    let small = dir.path().join("small.jsonl");
    std::fs::write(&small, ok.repeat(3)).expect("write");
    let (_, baseline, _) = validate_measured(&small);
    let (code, rss, stdout) = validate_measured(&path);
    assert_eq!(code, Some(1), "rejected, not crashed");
    // The reader holds at most one line of up to 32 MiB (its limit) beyond its baseline
    // (tokenizer tables, threads): far from the 200 MB the line would take.
    assert!(
        rss < baseline + 64 * 1024,
        "peak RSS {rss} KiB validating a 200 MB line, {baseline} KiB for a tiny file"
    );
    let out_stdout = stdout;
    let report: serde_json::Value = serde_json::from_slice(&out_stdout).expect("json report");
    let file = &report;
    assert_eq!(file["examples"], 3, "{file}");
    assert_eq!(file["valid_examples"], 2, "{file}");
    let first = &file["first_errors"][0];
    assert_eq!(first["line"], 2, "{first}");
    assert!(
        first["detail"]
            .as_str()
            .is_some_and(|d| d.contains("skipped unread")),
        "{first}"
    );
}

/// Runs `fthub validate FILE --format json` under GNU time: exit code, peak RSS (KiB), stdout.
fn validate_measured(path: &std::path::Path) -> (Option<i32>, u64, Vec<u8>) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "max_rss_kib=%M"])
        .arg(common::fthub())
        .arg("validate")
        .arg(path)
        .args(["--format", "json"])
        .output()
        .expect("GNU time (Debian package `time`; scripts/test installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rss: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("max_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS in {stderr}"));
    (out.status.code(), rss, out.stdout)
}
