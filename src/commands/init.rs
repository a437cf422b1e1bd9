//! `fthub init DIR`: a function app that `fthub dev` runs at once — `host.json`, every
//! `functions/*/function.json`, `eventgrid.json`, `local.settings.json`, and a topology on
//! the built-in emulator whose Test and Prod approvers have newly generated keys.

use std::path::{Path, PathBuf};

use crate::domain::approval::generate_key;
use crate::domain::env::Env;
use crate::domain::topology::{Approver, Topology};

/// The function app the binary was built with; a test checks it against `functions/`.
pub const FUNCTIONS: [(&str, &str); 13] = [
    (
        "ApplyApproval",
        include_str!("../../functions/ApplyApproval/function.json"),
    ),
    (
        "ApprovalsDeadLetters",
        include_str!("../../functions/ApprovalsDeadLetters/function.json"),
    ),
    (
        "DatasetArrived",
        include_str!("../../functions/DatasetArrived/function.json"),
    ),
    (
        "EvaluateCandidate",
        include_str!("../../functions/EvaluateCandidate/function.json"),
    ),
    (
        "EvaluationCompletedDeadLetters",
        include_str!("../../functions/EvaluationCompletedDeadLetters/function.json"),
    ),
    (
        "IntakeDeadLetters",
        include_str!("../../functions/IntakeDeadLetters/function.json"),
    ),
    (
        "KeepWarm",
        include_str!("../../functions/KeepWarm/function.json"),
    ),
    (
        "PromoteOnEvaluation",
        include_str!("../../functions/PromoteOnEvaluation/function.json"),
    ),
    (
        "Status",
        include_str!("../../functions/Status/function.json"),
    ),
    (
        "SubmitRun",
        include_str!("../../functions/SubmitRun/function.json"),
    ),
    (
        "TrainingCompletedDeadLetters",
        include_str!("../../functions/TrainingCompletedDeadLetters/function.json"),
    ),
    (
        "TrainingMonitor",
        include_str!("../../functions/TrainingMonitor/function.json"),
    ),
    (
        "ValidateSubmission",
        include_str!("../../functions/ValidateSubmission/function.json"),
    ),
];

const HOST_JSON: &str = include_str!("../../host.json");
const EVENTGRID_JSON: &str = include_str!("../../eventgrid.json");

/// The approvers `init` creates, one per environment that takes approvals.
pub const APPROVERS: [(Env, &str); 2] =
    [(Env::Test, "quality-lead"), (Env::Prod, "release-manager")];

/// Why `init` wrote nothing (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The directory already holds a function app.
    #[error("{0} already exists; `fthub init` never overwrites: choose an empty or new directory")]
    Exists(String),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// No randomness for the keys.
    #[error("no OS randomness for the approver keys: {0}")]
    Random(String),
}

/// What `init` made.
#[derive(Debug)]
pub struct Scaffold {
    /// Every file written, relative to the directory.
    pub files: Vec<PathBuf>,
    /// (environment, approver, key file) for each generated approver.
    pub approvers: Vec<(Env, String, PathBuf)>,
}

fn write(dir: &Path, rel: &Path, text: &str, secret: bool) -> Result<(), InitError> {
    let path = dir.join(rel);
    let err = |source| InitError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    use std::io::Write as _;
    let mut f = opts.open(&path).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)
}

/// Scaffolds a function app in `dir` (created if missing).
///
/// # Errors
/// When any file it would write exists already, or on I/O failure.
pub fn init(dir: &Path) -> Result<Scaffold, InitError> {
    let mut files: Vec<(PathBuf, String, bool)> = vec![
        ("host.json".into(), HOST_JSON.to_owned(), false),
        ("eventgrid.json".into(), EVENTGRID_JSON.to_owned(), false),
    ];
    for (name, json) in FUNCTIONS {
        files.push((
            Path::new("functions").join(name).join("function.json"),
            json.to_owned(),
            false,
        ));
    }
    // The topology names the emulator by placeholder, so `fthub dev` fills in wherever its
    // emulator listens; approvers get fresh keys instead of the demo's published ones.
    let mut topology = Topology::local(crate::app::EMULATOR_PLACEHOLDER);
    let mut approvers = Vec::new();
    for (env, name) in APPROVERS {
        let (secret, public) = generate_key().map_err(|e| InitError::Random(e.to_string()))?;
        let key_file = Path::new("keys").join(format!("{name}.key"));
        files.push((key_file.clone(), format!("{secret}\n"), true));
        if let Some(e) = topology.environments.get_mut(&env) {
            e.approvers = vec![Approver {
                name: name.to_owned(),
                public_key: public,
            }];
        }
        approvers.push((env, name.to_owned(), key_file));
    }
    files.push((
        "topology.json".into(),
        serde_json::to_string_pretty(&topology).unwrap_or_default() + "\n",
        false,
    ));
    files.push((
        "local.settings.json".into(),
        serde_json::to_string_pretty(&serde_json::json!({
            "IsEncrypted": false,
            "Values": {"FUNCTIONS_WORKER_RUNTIME": "Custom", "FTHUB_TOPOLOGY": "topology.json"}
        }))
        .unwrap_or_default()
            + "\n",
        false,
    ));
    files.push((".gitignore".into(), "keys/\n.fthub/\n".into(), false));
    // Refuse before writing anything, so a refusal leaves the directory as it was.
    if let Some((rel, _, _)) = files.iter().find(|(rel, _, _)| dir.join(rel).exists()) {
        return Err(InitError::Exists(dir.join(rel).display().to_string()));
    }
    for (rel, text, secret) in &files {
        write(dir, rel, text, *secret)?;
    }
    Ok(Scaffold {
        files: files.into_iter().map(|(rel, _, _)| rel).collect(),
        approvers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_function_app_is_the_repositorys_functions_directory() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("functions");
        let mut on_disk: Vec<String> = std::fs::read_dir(&root)
            .expect("functions/")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = FUNCTIONS.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(embedded, on_disk);
        for (name, json) in FUNCTIONS {
            let file = std::fs::read_to_string(root.join(name).join("function.json"))
                .expect("function.json");
            assert_eq!(json, file, "{name}");
        }
    }

    #[test]
    fn init_writes_a_valid_topology_with_fresh_approver_keys_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("dir");
        let s = init(dir.path()).expect("init");
        assert!(s.files.iter().any(|f| f.ends_with("function.json")));
        let text = std::fs::read_to_string(dir.path().join("topology.json")).expect("topology");
        let t = Topology::from_json(&text.replace(crate::app::EMULATOR_PLACEHOLDER, "http://x"))
            .expect("valid topology");
        for (env, name, key_file) in &s.approvers {
            let secret = std::fs::read_to_string(dir.path().join(key_file)).expect("key");
            let key = crate::domain::approval::parse_signing_key(&secret).expect("a key");
            let listed = t.approvers(*env, "any");
            assert_eq!(listed.len(), 1);
            assert_eq!(&listed[0].name, name);
            assert_eq!(
                listed[0].public_key,
                crate::domain::approval::public_key_of(&key)
            );
            assert_ne!(
                listed[0].public_key,
                Topology::local("http://x").approvers(*env, "any")[0].public_key,
                "not the demo's published key"
            );
        }
        let again = init(dir.path()).expect_err("refused");
        assert!(matches!(again, InitError::Exists(_)), "{again}");
    }
}
