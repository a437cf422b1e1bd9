//! The validation policy: what rejects a dataset and what only warns.
//!
//! A policy file is JSON:
//!
//! ```json
//! { "compliance": { "email": "reject", "ip_address": "ignore" },
//!   "require_bom": false, "min_examples": 10, "max_bytes": 536870912,
//!   "leakage": "warn", "duplicates": "warn" }
//! ```
//!
//! Omitted keys keep their defaults: secrets reject, personal data warns, at least 10
//! valid examples, at most 512 MB, a BOM is accepted but not required.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::compliance::FindingClass;

/// What to do about a finding class or a data-quality signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Not reported.
    Ignore,
    /// Reported; the dataset is still accepted.
    Warn,
    /// The dataset is rejected.
    Reject,
}

impl Action {
    /// Files `what` under the reasons (reject), the warnings (warn), or nowhere (ignore).
    pub fn route(self, what: String, reasons: &mut Vec<String>, warnings: &mut Vec<String>) {
        match self {
            Action::Ignore => {}
            Action::Warn => warnings.push(what),
            Action::Reject => reasons.push(format!("{what} (rejected by policy)")),
        }
    }
}

/// Azure's file size limit for fine-tuning files.
pub const AZURE_MAX_BYTES: u64 = 512 * 1024 * 1024;
/// Azure's minimum number of training examples.
pub const AZURE_MIN_EXAMPLES: u64 = 10;

/// The policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Per finding class; classes not named keep their default.
    pub compliance: BTreeMap<FindingClass, Action>,
    /// Reject files without a UTF-8 BOM (the Azure docs ask for one; the service is not
    /// known to enforce it).
    pub require_bom: bool,
    /// Minimum valid examples.
    pub min_examples: u64,
    /// Maximum file size in bytes.
    pub max_bytes: u64,
    /// Examples shared between training and validation/eval files.
    pub leakage: Action,
    /// Repeated examples within a file.
    pub duplicates: Action,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            compliance: BTreeMap::new(),
            require_bom: false,
            min_examples: AZURE_MIN_EXAMPLES,
            max_bytes: AZURE_MAX_BYTES,
            leakage: Action::Warn,
            duplicates: Action::Warn,
        }
    }
}

impl Policy {
    /// The action for a finding class.
    pub fn action(&self, class: FindingClass) -> Action {
        self.compliance
            .get(&class)
            .copied()
            .unwrap_or(if class.is_secret() {
                Action::Reject
            } else {
                Action::Warn
            })
    }

    /// Parses a policy file.
    ///
    /// # Errors
    /// When the text is not a valid policy (unknown keys and classes are refused).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_reject_and_personal_data_warns_by_default() {
        let p = Policy::default();
        assert_eq!(p.action(FindingClass::AwsAccessKey), Action::Reject);
        assert_eq!(p.action(FindingClass::Email), Action::Warn);
    }

    #[test]
    fn a_policy_file_overrides_classes_and_refuses_unknown_keys() {
        let p = Policy::from_json(
            r#"{"compliance": {"email": "reject", "jwt": "ignore"}, "require_bom": true}"#,
        )
        .expect("policy");
        assert_eq!(p.action(FindingClass::Email), Action::Reject);
        assert_eq!(p.action(FindingClass::Jwt), Action::Ignore);
        assert!(p.require_bom);
        assert_eq!(p.min_examples, 10);
        assert!(Policy::from_json(r#"{"compliance": {"dna": "reject"}}"#).is_err());
        assert!(Policy::from_json(r#"{"strict": true}"#).is_err());
    }
}
