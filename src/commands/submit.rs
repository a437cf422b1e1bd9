//! `fthub submit DIR`: check the submission as the pipeline will (names, manifest, data),
//! work out the run it starts, then upload the data files and the manifest last (the
//! manifest starts the run).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ops::{OpsError, read};
use crate::domain::dataset_path::{DATASETS_CONTAINER, DatasetPath};
use crate::domain::manifest::Manifest;
use crate::domain::run::run_id;
use crate::domain::validation::report::Verdict;
use crate::domain::validation::{Rules, tokens};
use crate::ports::{BlobStore, Condition};
use crate::services::validation::{StreamOptions, SubmissionReport, validate_paths};

/// A checked submission, ready to upload.
#[derive(Debug)]
pub struct Plan {
    /// Project.
    pub project: String,
    /// Submission name.
    pub submission: String,
    /// The manifest as it will be uploaded (with `submitted_by`).
    pub manifest_json: Vec<u8>,
    /// The manifest.
    pub manifest: Manifest,
    /// (blob name, local path) of each data file, training first.
    pub files: Vec<(String, PathBuf)>,
    /// The run the upload starts: the pipeline derives the same id from the same bytes.
    pub run_id: String,
    /// The id versions before the manifest counted gave these files: intake continues a run
    /// there when its manifest asked for the same.
    pub legacy_run_id: String,
    /// The local validation, unless skipped.
    pub validation: Option<SubmissionReport>,
}

/// Why a submission is not sent.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The project or submission name breaks the dataset path rule.
    #[error("project {project:?}, submission {submission:?}: {reason}")]
    BadName {
        /// Project.
        project: String,
        /// Submission.
        submission: String,
        /// The rule broken.
        reason: String,
    },
    /// The directory has no manifest.
    #[error(
        "{0} has no manifest.json: write one (`{{}}` trains train.jsonl with the project's defaults)"
    )]
    NoManifest(String),
    /// The manifest is not what intake accepts.
    #[error("{path}: {reason}")]
    BadManifest {
        /// Its path.
        path: String,
        /// What is wrong (an unknown field is named, with its line).
        reason: String,
    },
    /// A data file the manifest names is not there.
    #[error("{0} is named by manifest.json but missing")]
    MissingFile(String),
    /// The base model is of no known family.
    #[error("base model {0:?} is not a known family")]
    UnknownModel(String),
    /// The local dataset check rejects it; the report says why.
    #[error("the local validation rejects the submission (--no-validate skips it)")]
    Rejected(Box<SubmissionReport>),
    /// A data file could not be read while validating.
    #[error("cannot validate: {0}")]
    Unreadable(String),
    /// Reading, storage.
    #[error(transparent)]
    Ops(#[from] OpsError),
}

impl SubmitError {
    /// Whether the answer is "no" (exit 1: intake would refuse or reject it) rather than a
    /// command that could not do its job (exit 2: unreadable files, storage).
    pub fn is_no(&self) -> bool {
        !matches!(self, Self::Unreadable(_) | Self::Ops(_))
    }
}

fn sha256_file(path: &Path) -> Result<String, OpsError> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let io = |source| OpsError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks a submission directory the way intake will and works out its run id.
///
/// # Errors
/// Refused: a bad project or submission name, a manifest that is not JSON or names unknown
/// fields, a missing data file, a dataset the validation rejects. Ops: unreadable files.
pub fn plan(
    dir: &Path,
    project: &str,
    submission: &str,
    submitter: &str,
    validate: bool,
) -> Result<Plan, SubmitError> {
    let manifest_path = dir.join("manifest.json");
    DatasetPath::parse(
        DATASETS_CONTAINER,
        &format!("{project}/{submission}/manifest.json"),
    )
    .map_err(|e| SubmitError::BadName {
        project: project.to_owned(),
        submission: submission.to_owned(),
        reason: e.to_string(),
    })?;
    if !manifest_path.is_file() {
        return Err(SubmitError::NoManifest(dir.display().to_string()));
    }
    let bad = |reason: String| SubmitError::BadManifest {
        path: manifest_path.display().to_string(),
        reason,
    };
    let mut value: Value = serde_json::from_slice(&read(&manifest_path)?)
        .map_err(|e| bad(format!("not JSON: {e}")))?;
    let obj = value
        .as_object_mut()
        .ok_or_else(|| bad("must be a JSON object".into()))?;
    obj.entry("submitted_by")
        .or_insert_with(|| Value::String(submitter.to_owned()));
    let manifest_json = serde_json::to_vec_pretty(&value).unwrap_or_default();
    let manifest = Manifest::from_json(&manifest_json).map_err(|e| bad(e.to_string()))?;
    let mut files = Vec::new();
    let mut digests = Vec::new();
    for f in manifest.files() {
        let path = dir.join(&f);
        if !path.is_file() {
            return Err(SubmitError::MissingFile(path.display().to_string()));
        }
        digests.push(sha256_file(&path)?);
        files.push((format!("{project}/{submission}/{f}"), path));
    }
    let validation = if validate {
        let model = manifest
            .base_model
            .clone()
            .unwrap_or_else(|| tokens::DEFAULT_MODEL.to_owned());
        let rules = Rules::for_manifest(&manifest, model.clone())
            .ok_or_else(|| SubmitError::UnknownModel(model.clone()))?;
        let paths: Vec<PathBuf> = files.iter().map(|(_, p)| p.clone()).collect();
        let report = validate_paths(&paths, &rules, StreamOptions::default(), &|_, _| {})
            .map_err(|e| SubmitError::Unreadable(e.to_string()))?;
        if report.verdict == Verdict::Rejected {
            return Err(SubmitError::Rejected(Box::new(report)));
        }
        Some(report)
    } else {
        None
    };
    Ok(Plan {
        run_id: run_id(project, submission, &digests, &manifest.settings_digest()),
        legacy_run_id: crate::domain::run::legacy_run_id(project, submission, &digests),
        project: project.to_owned(),
        submission: submission.to_owned(),
        manifest_json,
        manifest,
        files,
        validation,
    })
}

/// Uploads: data files first, streamed, then `manifest.json`. Returns the blob names.
///
/// # Errors
/// Storage failures.
pub async fn upload(store: &dyn BlobStore, plan: &Plan) -> Result<Vec<String>, OpsError> {
    let mut written = Vec::new();
    for (name, path) in &plan.files {
        // Streamed: a large dataset is never held in memory.
        store
            .put_file(DATASETS_CONTAINER, name, path, Condition::None)
            .await?;
        written.push(name.clone());
    }
    let name = format!("{}/{}/manifest.json", plan.project, plan.submission);
    store
        .put(
            DATASETS_CONTAINER,
            &name,
            &plan.manifest_json,
            Condition::None,
        )
        .await?;
    written.push(name);
    Ok(written)
}

/// Plans (with validation) and uploads in one step; returns the blob names.
///
/// # Errors
/// As [`plan`] and [`upload`].
pub async fn submit(
    store: &dyn BlobStore,
    dir: &Path,
    project: &str,
    submission: &str,
    submitter: &str,
) -> Result<Vec<String>, SubmitError> {
    let p = plan(dir, project, submission, submitter, true)?;
    Ok(upload(store, &p).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(manifest: &str, train: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("dir");
        std::fs::write(d.path().join("manifest.json"), manifest).expect("manifest");
        std::fs::write(d.path().join("train.jsonl"), train).expect("train");
        d
    }

    const EXAMPLE: &str = r#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}"#;

    fn valid_train() -> String {
        (0..12)
            .map(|i| EXAMPLE.replace("\"u\"", &format!("\"u{i}\"")) + "\n")
            .collect()
    }

    #[test]
    fn a_manifest_typo_is_refused_naming_the_field_before_anything_is_uploaded() {
        let d = dir_with(
            r#"{"base_modle": "gpt-4.1-mini-2025-04-14"}"#,
            &valid_train(),
        );
        let e = plan(d.path(), "acme", "s1", "ana", true).expect_err("refused");
        assert!(e.to_string().contains("base_modle"), "{e}");
    }

    #[test]
    fn a_bad_project_name_is_refused_with_the_pipelines_rule() {
        let d = dir_with("{}", &valid_train());
        let e = plan(d.path(), "Acme Support!", "s1", "ana", true).expect_err("refused");
        assert!(e.to_string().contains("Acme Support!"), "{e}");
    }

    #[test]
    fn rejected_data_is_not_sent_and_the_report_says_why() {
        let d = dir_with("{}", "{\"messages\": []}\n");
        match plan(d.path(), "acme", "s1", "ana", true) {
            Err(SubmitError::Rejected(r)) => assert_eq!(r.verdict, Verdict::Rejected),
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(
            plan(d.path(), "acme", "s1", "ana", false).is_ok(),
            "--no-validate"
        );
    }

    #[test]
    fn the_run_id_covers_the_manifest_so_a_corrected_manifest_is_a_new_run() {
        let d = dir_with(r#"{"hyperparameters": {"n_epochs": 2}}"#, &valid_train());
        let first = plan(d.path(), "acme", "s1", "ana", true).expect("plan");
        assert!(first.run_id.starts_with("acme-s1-"), "{}", first.run_id);
        let again = plan(d.path(), "acme", "s1", "bob", true).expect("plan");
        assert_eq!(first.run_id, again.run_id, "who submits does not matter");
        std::fs::write(
            d.path().join("manifest.json"),
            r#"{"hyperparameters": {"n_epochs": 3}}"#,
        )
        .expect("manifest");
        let changed = plan(d.path(), "acme", "s1", "ana", true).expect("plan");
        assert_ne!(first.run_id, changed.run_id);
    }
}
