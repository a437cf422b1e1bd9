//! Streams datasets through the validation rules on every core, with memory bounded by
//! the batch size (plus the longest line), whatever the file size.
//!
//! A reader cuts the byte stream into batches of whole lines; worker threads check them
//! and keep their own [`Stats`]; the parts are merged at the end. Merging is
//! order-independent, so the result does not depend on the thread count or batch size.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;

use serde::Serialize;

use crate::domain::validation::report::{FileReport, Verdict};
use crate::domain::validation::{Rules, Stats};
use crate::ports::{BlobError, BlobStore};

const BOM: &[u8] = b"\xEF\xBB\xBF";
const READ_CHUNK: usize = 256 * 1024;

/// How to stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// Worker threads.
    pub threads: usize,
    /// Target batch size in bytes (a batch always ends at a line end).
    pub batch_bytes: usize,
    /// Longest line read; a longer one is counted as an error and skipped unread, so a
    /// file that is one 200 MB line never takes 200 MB of memory.
    pub max_line_bytes: usize,
}

/// Default [`StreamOptions::max_line_bytes`]: far above any example a model's context can
/// hold, far below a memory problem.
pub const MAX_LINE_BYTES: usize = 32 << 20;

/// Work for the validating threads.
enum Job {
    /// Complete lines, the first numbered `first`.
    Lines(u64, Vec<u8>),
    /// A line longer than the limit, skipped unread.
    Oversized { line: u64, bytes: u64 },
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            batch_bytes: 1 << 20,
            max_line_bytes: MAX_LINE_BYTES,
        }
    }
}

/// Validation failures that are not findings about the data.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    /// The file could not be read.
    #[error("cannot read {file}")]
    Read {
        /// File.
        file: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The blob could not be opened.
    #[error("cannot open dataset blob")]
    Blob(#[from] BlobError),
}

/// One validated file: the report and the distinct example hashes (for leakage checks).
#[derive(Debug, Clone)]
pub struct Validated {
    /// The report.
    pub report: FileReport,
    /// Sorted, distinct content hashes of its examples.
    pub hashes: Vec<u64>,
}

/// Validates one stream.
///
/// # Errors
/// When reading fails.
pub fn validate_reader(
    name: &str,
    training: bool,
    mut reader: impl Read,
    rules: &Rules,
    opts: StreamOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Validated, ValidationError> {
    let threads = opts.threads.max(1);
    let (tx, rx) = sync_channel::<Job>(threads * 2);
    let max_line = opts.max_line_bytes.max(1);
    let rx = Mutex::new(rx);
    let read_err = |source| ValidationError::Read {
        file: name.to_owned(),
        source,
    };
    let (stats, bytes, bom) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let rx = &rx;
                scope.spawn(move || {
                    let mut stats = Stats::default();
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => break,
                        };
                        match job {
                            Ok(Job::Lines(first_line, batch)) => {
                                let body = batch.strip_suffix(b"\n").unwrap_or(&batch);
                                for (i, line) in body.split(|b| *b == b'\n').enumerate() {
                                    let n = first_line + i as u64;
                                    // Lines over the limit are refused alike, however they
                                    // arrived (whole in one read, or skipped while streaming).
                                    if line.len() > max_line {
                                        stats.oversized_line(n, line.len() as u64, max_line as u64);
                                    } else {
                                        stats.check_line(rules, n, line);
                                    }
                                }
                            }
                            Ok(Job::Oversized { line, bytes }) => {
                                stats.oversized_line(line, bytes, max_line as u64);
                            }
                            Err(_) => break,
                        }
                    }
                    stats
                })
            })
            .collect();

        let mut total = 0u64;
        let mut bom = false;
        let mut sent_any = false;
        let mut next_line = 1u64;
        let mut pending: Vec<u8> = Vec::with_capacity(opts.batch_bytes + READ_CHUNK);
        let mut chunk = vec![0u8; READ_CHUNK];
        let send =
            |mut batch: Vec<u8>, sent_any: &mut bool, bom: &mut bool, next_line: &mut u64| {
                if !*sent_any {
                    *sent_any = true;
                    if batch.starts_with(BOM) {
                        *bom = true;
                        batch.drain(..BOM.len());
                    }
                }
                let lines = batch.iter().filter(|b| **b == b'\n').count() as u64;
                let first = *next_line;
                *next_line += lines;
                // A send fails only if every worker died; their panic surfaces at join.
                let _ = tx.send(Job::Lines(first, batch));
            };
        // Bytes of an oversized line skipped so far, while looking for its end.
        let mut skipping: Option<u64> = None;
        // Offset in `pending` just past its last newline (0: no complete line in it).
        let mut line_start = 0usize;
        let result: std::io::Result<()> = (|| {
            loop {
                let n = match reader.read(&mut chunk) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if n == 0 {
                    break;
                }
                total += n as u64;
                progress(total);
                let mut data = &chunk[..n];
                if let Some(skipped) = skipping {
                    match data.iter().position(|b| *b == b'\n') {
                        None => {
                            skipping = Some(skipped + n as u64);
                            continue;
                        }
                        Some(pos) => {
                            let line = next_line;
                            next_line += 1;
                            sent_any = true;
                            let _ = tx.send(Job::Oversized {
                                line,
                                bytes: skipped + pos as u64,
                            });
                            skipping = None;
                            data = &data[pos + 1..];
                        }
                    }
                }
                // Where the unfinished last line starts: only the new bytes need a look.
                if let Some(p) = data.iter().rposition(|b| *b == b'\n') {
                    line_start = pending.len() + p + 1;
                }
                pending.extend_from_slice(data);
                // The unfinished last line is too long: flush what precedes it, then skip it
                // (without copying it anywhere).
                if pending.len() - line_start > max_line {
                    let skipped = (pending.len() - line_start) as u64;
                    pending.truncate(line_start);
                    if !pending.is_empty() {
                        send(
                            std::mem::take(&mut pending),
                            &mut sent_any,
                            &mut bom,
                            &mut next_line,
                        );
                    }
                    pending = Vec::with_capacity(opts.batch_bytes + READ_CHUNK);
                    line_start = 0;
                    skipping = Some(skipped);
                    continue;
                }
                // Keep at least BOM.len() bytes before the first send, so a BOM split across
                // reads is still recognised.
                if pending.len() >= opts.batch_bytes.max(BOM.len()) && line_start > 0 {
                    let rest = pending.split_off(line_start);
                    line_start = 0;
                    let batch = std::mem::replace(&mut pending, rest);
                    send(batch, &mut sent_any, &mut bom, &mut next_line);
                }
            }
            if let Some(bytes) = skipping {
                let _ = tx.send(Job::Oversized {
                    line: next_line,
                    bytes,
                });
            }
            if !pending.is_empty() {
                send(
                    std::mem::take(&mut pending),
                    &mut sent_any,
                    &mut bom,
                    &mut next_line,
                );
            }
            Ok(())
        })();
        drop(tx);
        let mut stats = Stats::default();
        for w in workers {
            match w.join() {
                Ok(s) => stats.merge(s),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        result.map(|()| (stats, total, bom))
    })
    .map_err(read_err)?;
    let report = FileReport::new(name, bytes, bom, training, rules, &stats);
    let mut hashes = stats.hashes;
    hashes.sort_unstable();
    hashes.dedup();
    Ok(Validated { report, hashes })
}

/// What a file is for in a submission, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    /// `train*.jsonl`, or the first file.
    Training,
    /// `valid*.jsonl`.
    Validation,
    /// `eval*.jsonl` / `test*.jsonl`.
    Eval,
}

/// The role of `name` (the first file of a submission is training unless named otherwise).
pub fn role_of(name: &str, first: bool) -> FileRole {
    let base = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase();
    if base.starts_with("valid") {
        FileRole::Validation
    } else if base.starts_with("eval") || base.starts_with("test") {
        FileRole::Eval
    } else if base.starts_with("train") || first {
        FileRole::Training
    } else {
        FileRole::Eval
    }
}

/// A submission: several files validated together.
#[derive(Debug, Clone, Serialize)]
pub struct SubmissionReport {
    /// Per file, in the order given.
    pub files: Vec<FileReport>,
    /// Role of each file.
    pub roles: BTreeMap<String, FileRole>,
    /// Examples of each validation/eval file that also appear in the training file.
    pub leakage: BTreeMap<String, u64>,
    /// Rejected if any file is, or leakage is rejected by policy.
    pub verdict: Verdict,
    /// Why.
    pub reasons: Vec<String>,
    /// Warnings beyond the files' own.
    pub warnings: Vec<String>,
}

/// Joins validated files into a submission and checks train/eval leakage.
pub fn submission(files: Vec<(String, Validated)>, rules: &Rules) -> SubmissionReport {
    let mut roles = BTreeMap::new();
    let mut training: Option<&Vec<u64>> = None;
    for (i, (name, v)) in files.iter().enumerate() {
        let role = role_of(name, i == 0);
        if role == FileRole::Training && training.is_none() {
            training = Some(&v.hashes);
        }
        roles.insert(name.clone(), role);
    }
    let mut leakage = BTreeMap::new();
    let (mut reasons, mut warnings) = (Vec::new(), Vec::new());
    if let Some(train) = training {
        for (name, v) in &files {
            if roles[name] == FileRole::Training {
                continue;
            }
            let shared = v
                .hashes
                .iter()
                .filter(|h| train.binary_search(h).is_ok())
                .count() as u64;
            leakage.insert(name.clone(), shared);
            if shared > 0 {
                let what = format!(
                    "{shared} distinct examples of {name} also appear in the training file (leakage)"
                );
                rules
                    .policy
                    .leakage
                    .route(what, &mut reasons, &mut warnings);
            }
        }
    }
    if files
        .iter()
        .any(|(_, v)| v.report.verdict == Verdict::Rejected)
    {
        reasons.push("at least one file is rejected".into());
    }
    SubmissionReport {
        files: files.into_iter().map(|(_, v)| v.report).collect(),
        roles,
        leakage,
        verdict: if reasons.is_empty() {
            Verdict::Accepted
        } else {
            Verdict::Rejected
        },
        reasons,
        warnings,
    }
}

/// Validates local files as one submission.
///
/// # Errors
/// When a file cannot be read.
pub fn validate_paths(
    paths: &[PathBuf],
    rules: &Rules,
    opts: StreamOptions,
    progress: &(dyn Fn(&Path, u64) + Sync),
) -> Result<SubmissionReport, ValidationError> {
    let mut files = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let name = p.display().to_string();
        let f = std::fs::File::open(p).map_err(|source| ValidationError::Read {
            file: name.clone(),
            source,
        })?;
        let training = role_of(&name, i == 0) == FileRole::Training;
        let v = validate_reader(&name, training, f, rules, opts, &|n| progress(p, n))?;
        files.push((name, v));
    }
    Ok(submission(files, rules))
}

/// Validates a blob, streaming it from storage without holding it in memory.
///
/// # Errors
/// When the blob cannot be opened or read.
pub async fn validate_blob(
    store: &dyn BlobStore,
    container: &str,
    name: &str,
    training: bool,
    rules: Rules,
    opts: StreamOptions,
) -> Result<Validated, ValidationError> {
    let (_, reader) = store.open(container, name).await?;
    let label = format!("{container}/{name}");
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    let joined = tokio::task::spawn_blocking(move || {
        validate_reader(&label, training, bridge, &rules, opts, &|_| {})
    })
    .await;
    match joined {
        Ok(r) => r,
        Err(e) => Err(ValidationError::Read {
            file: name.to_owned(),
            source: std::io::Error::other(e),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::validation::Method;
    use crate::domain::validation::policy::Policy;
    use crate::domain::validation::tokens::model_spec;
    use proptest::prelude::*;

    fn rules() -> Rules {
        Rules {
            model: "gpt-4o".into(),
            spec: model_spec("gpt-4o").expect("model"),
            method: Method::Supervised,
            n_epochs: None,
            policy: Policy::default(),
        }
    }

    fn run(bytes: &[u8], threads: usize, batch: usize) -> FileReport {
        validate_reader(
            "f",
            true,
            bytes,
            &rules(),
            StreamOptions {
                threads,
                batch_bytes: batch,
                max_line_bytes: MAX_LINE_BYTES,
            },
            &|_| {},
        )
        .expect("validate")
        .report
    }

    #[test]
    fn an_overlong_line_is_one_error_at_its_line_number_whatever_the_batching() {
        let long = format!("{{\"messages\":\"{}\"}}", "x".repeat(5000));
        let text = format!("{}\n{long}\n{}\n{long}", LINES[1], LINES[1]);
        for (threads, batch) in [(1, 1), (2, 7), (3, 64), (2, 1 << 20)] {
            let stats = validate_reader(
                "f",
                true,
                text.as_bytes(),
                &rules(),
                StreamOptions {
                    threads,
                    batch_bytes: batch,
                    max_line_bytes: 1000,
                },
                &|_| {},
            )
            .expect("validate")
            .report;
            assert_eq!(
                (stats.examples, stats.valid_examples),
                (4, 2),
                "{threads}/{batch}"
            );
            let lines: Vec<u64> = stats.first_errors.iter().map(|e| e.line).collect();
            assert_eq!(lines, [2, 4], "{threads}/{batch}");
            assert!(
                stats.first_errors[0].detail.contains("5015 bytes"),
                "{:?}",
                stats.first_errors[0]
            );
        }
    }

    const LINES: [&str; 6] = [
        r#"{"messages":[{"role":"user","content":"hi jane@example.com"},{"role":"assistant","content":"hello"}]}"#,
        r#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}"#,
        "{broken",
        "",
        r#"{"messages":[{"role":"user","content":"q"}]}"#,
        "   \r",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn counts_never_depend_on_threads_or_batch_size(
            picks in proptest::collection::vec(0usize..LINES.len(), 0..60),
            crlf in any::<bool>(),
            bom in any::<bool>(),
            threads in 1usize..5,
            batch in 1usize..300,
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            if bom { text.push('\u{feff}'); }
            for p in &picks { text.push_str(LINES[*p]); text.push_str(nl); }
            let one = run(text.as_bytes(), 1, 1 << 20);
            let many = run(text.as_bytes(), threads, batch);
            prop_assert_eq!(one, many);
        }
    }

    #[test]
    fn a_bom_is_not_part_of_the_first_line_and_line_numbers_stay_exact() {
        let text = format!("\u{feff}{}\n\n{{bad\n", LINES[1]);
        let r = run(text.as_bytes(), 2, 4);
        assert!(r.bom);
        assert_eq!(r.examples, 2);
        assert_eq!(r.valid_examples, 1);
        assert_eq!(r.first_errors[0].line, 3);
    }

    #[test]
    fn a_last_line_without_newline_is_an_example() {
        let r = run(LINES[1].as_bytes(), 1, 8);
        assert_eq!((r.examples, r.valid_examples), (1, 1));
    }

    #[test]
    fn leakage_between_training_and_eval_files_is_reported() {
        let train = format!("{}\n{}\n", LINES[0], LINES[1]);
        let eval = format!("{}\n", LINES[1]);
        let v = |s: &str| {
            validate_reader(
                "x",
                true,
                s.as_bytes(),
                &rules(),
                StreamOptions::default(),
                &|_| {},
            )
            .expect("ok")
        };
        let sub = submission(
            vec![
                ("train.jsonl".into(), v(&train)),
                ("eval.jsonl".into(), v(&eval)),
            ],
            &rules(),
        );
        assert_eq!(sub.leakage["eval.jsonl"], 1);
        assert!(sub.warnings[0].contains("leakage"));
        assert_eq!(sub.roles["eval.jsonl"], FileRole::Eval);
    }
}

#[cfg(test)]
mod blob_tests {
    use super::*;
    use crate::adapters::local::blob::FsBlobStore;
    use crate::domain::validation::Method;
    use crate::domain::validation::policy::Policy;
    use crate::domain::validation::tokens::model_spec;
    use crate::ports::Condition;

    #[tokio::test]
    async fn a_dataset_blob_is_validated_by_streaming_it_from_the_store() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = FsBlobStore::new(dir.path());
        let line =
            r#"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}"#;
        let body = format!("{line}\n").repeat(12);
        store
            .put(
                "datasets",
                "acme/s1/train.jsonl",
                body.as_bytes(),
                Condition::None,
            )
            .await
            .expect("put");
        let rules = Rules {
            model: "gpt-4o".into(),
            spec: model_spec("gpt-4o").expect("m"),
            method: Method::Supervised,
            n_epochs: None,
            policy: Policy::default(),
        };
        let v = validate_blob(
            &store,
            "datasets",
            "acme/s1/train.jsonl",
            true,
            rules,
            StreamOptions::default(),
        )
        .await
        .expect("validate");
        assert_eq!(v.report.examples, 12);
        assert_eq!(v.report.file, "datasets/acme/s1/train.jsonl");
        assert_eq!(v.report.duplicates, 11);
        assert_eq!(v.hashes.len(), 1);
    }
}
