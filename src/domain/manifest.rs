//! `manifest.json`: what a data scientist asks for. Every field has a default, so a bare
//! `*.jsonl` drop runs with the project's defaults.

use serde::{Deserialize, Serialize};

use super::aoai::{Hyperparameters, TrainingMethod};
use super::topology::Thresholds;

/// The manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Base model (dated name), or a fine-tuned model to continue from.
    #[serde(default)]
    pub base_model: Option<String>,
    /// Training method.
    #[serde(default)]
    pub method: TrainingMethod,
    /// Hyperparameters.
    #[serde(default)]
    pub hyperparameters: Hyperparameters,
    /// Seed.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Acceptance thresholds.
    #[serde(default)]
    pub thresholds: Option<Thresholds>,
    /// Environments to reach (default all).
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// Run this one iterates on.
    #[serde(default)]
    pub parent_run: Option<String>,
    /// Key Vault key reference for datasets stored with a customer-provided key.
    #[serde(default)]
    pub encryption_key: Option<String>,
    /// Who submitted (the CLI fills it in).
    #[serde(default)]
    pub submitted_by: Option<String>,
    /// Training file name within the submission.
    #[serde(default = "default_train")]
    pub training_file: String,
    /// Validation file name, if any.
    #[serde(default)]
    pub validation_file: Option<String>,
    /// Held-out evaluation file name, if any.
    #[serde(default)]
    pub eval_file: Option<String>,
}

fn strip_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn default_train() -> String {
    "train.jsonl".into()
}

impl Manifest {
    /// The manifest of a bare drop.
    pub fn bare(file: &str) -> Self {
        Self {
            base_model: None,
            method: TrainingMethod::Supervised,
            hyperparameters: Hyperparameters::default(),
            seed: None,
            thresholds: None,
            environments: None,
            parent_run: None,
            encryption_key: None,
            submitted_by: None,
            training_file: file.into(),
            validation_file: None,
            eval_file: None,
        }
    }

    /// Parses manifest JSON.
    ///
    /// # Errors
    /// When it is not JSON, names unknown fields, or sets a DPO hyperparameter (`beta`) for
    /// supervised training.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        use serde::de::Error as _;
        let m: Self = serde_json::from_slice(bytes)?;
        if m.hyperparameters.beta.is_some() && m.method != TrainingMethod::Dpo {
            return Err(serde_json::Error::custom(
                "hyperparameters.beta applies to DPO (\"method\": \"dpo\") only",
            ));
        }
        Ok(m)
    }

    /// A digest of what the manifest asks for (everything but who submitted it), so the
    /// same data under a changed manifest is a new run rather than the old one. Unset
    /// (`null`) fields do not count, so a field added to the manifest later leaves the ids of
    /// manifests that do not use it as they were.
    pub fn settings_digest(&self) -> String {
        let settings = Self {
            submitted_by: None,
            ..self.clone()
        };
        let mut v = serde_json::to_value(&settings).unwrap_or_default();
        strip_nulls(&mut v);
        super::run::sha256_hex(&serde_json::to_vec(&v).unwrap_or_default())
    }

    /// Data files in the submission (training first).
    pub fn files(&self) -> Vec<String> {
        std::iter::once(self.training_file.clone())
            .chain(self.validation_file.clone())
            .chain(self.eval_file.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(json: &str) -> String {
        Manifest::from_json(json.as_bytes())
            .expect("manifest")
            .settings_digest()
    }

    #[test]
    fn the_settings_digest_ignores_the_submitter_and_unset_fields_and_is_pinned() {
        let base = digest(r#"{"base_model": "gpt-4.1-mini-2025-04-14", "seed": 7}"#);
        assert_eq!(
            base,
            digest(
                r#"{"base_model": "gpt-4.1-mini-2025-04-14", "seed": 7, "submitted_by": "ana", "parent_run": null}"#
            )
        );
        assert_ne!(
            base,
            digest(r#"{"base_model": "gpt-4.1-mini-2025-04-14", "seed": 8}"#)
        );
        // Pinned: a change here changes every run id, which must be deliberate.
        assert_eq!(
            base,
            "57f944fa822dc583e22c6601ffad1f5bcae077f67ded2e86ec58fd03fd4d0354"
        );
    }
}
