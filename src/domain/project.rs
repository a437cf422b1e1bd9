//! Projects: the lines of business that share one estate. A project's name comes from its
//! dataset path (`datasets/{project}/…`) and is checked once, here, by the same rule
//! everywhere (paths, topology, CLI), because it becomes part of deployment names, job
//! suffixes, run ids and blob names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::env::Env;
use super::topology::{Approver, Thresholds};

/// Longest project name: leaves room in a 64-character deployment name and a 40-character
/// job suffix.
pub const MAX_LEN: usize = 32;

/// Why a project name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("project name {name:?} {problem}")]
pub struct BadProjectName {
    /// The name given.
    pub name: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

/// Checks a project name: 1 to [`MAX_LEN`] characters of `a-z`, `0-9` and `-`, starting and
/// ending with a letter or digit. Two different valid names never map to the same
/// deployment name.
///
/// # Errors
/// What is wrong.
pub fn check(name: &str) -> Result<(), BadProjectName> {
    let bad = |problem| {
        Err(BadProjectName {
            name: name.to_owned(),
            problem,
        })
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_LEN {
        return bad("is longer than 32 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("may contain only lower-case letters, digits and hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("must start and end with a letter or digit");
    }
    Ok(())
}

/// What the topology may say about one project; anything left out falls back to the
/// environment's or the estate's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectSettings {
    /// Approvers per environment, used instead of the environment's own for this project.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub approvers: BTreeMap<Env, Vec<Approver>>,
    /// Acceptance thresholds for this project's runs (a manifest's own still win).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Thresholds>,
    /// Base model of this project's bare drops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_model: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_lower_case_words_joined_by_hyphens() {
        for ok in ["acme", "support-routing", "a", "lob7", &"x".repeat(32)] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("Acme", "lower-case"),
            ("acme support", "lower-case"),
            ("acme_support", "lower-case"),
            ("-acme", "start and end"),
            ("acme-", "start and end"),
            (&"x".repeat(33), "32"),
        ] {
            let e = check(bad).expect_err(bad);
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn project_settings_refuse_unknown_fields() {
        let s: ProjectSettings =
            serde_json::from_str(r#"{"thresholds": {"min_score": 0.9}}"#).expect("parse");
        assert_eq!(s.thresholds.map(|t| t.min_score), Some(0.9));
        assert!(serde_json::from_str::<ProjectSettings>(r#"{"treshold": 1}"#).is_err());
    }
}
