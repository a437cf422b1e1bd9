//! Every setting the handler reads, read once at start-up from the environment (app
//! settings in Azure, `local.settings.json` values under `fthub dev`). With nothing set,
//! everything falls back to local defaults so `fthub serve` starts anywhere — except in
//! Azure, where a missing topology is an error naming the setting rather than a pipeline
//! pointed at an emulator on loopback.

use std::path::PathBuf;
use std::time::Duration;

use crate::adapters::azure::storage::DEFAULT_API_VERSION;

/// `fthub serve` settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Port on 127.0.0.1: `FUNCTIONS_CUSTOMHANDLER_PORT`, else the legacy
    /// `FUNCTIONS_HTTPWORKER_PORT`, else 3000.
    pub port: u16,
    /// The local state directory: `FTHUB_HOME`, else `.fthub` in the working directory.
    pub home: PathBuf,
    /// `FTHUB_TOPOLOGY`: the topology file (written by `scripts/package` in Azure); `None`
    /// selects the built-in local topology on the emulator.
    pub topology: Option<PathBuf>,
    /// Where blobs live: `FTHUB_STORAGE`, else the host's identity-based
    /// `AzureWebJobsStorage__blobServiceUri` / `__accountName`, else `{home}/storage`.
    pub storage: crate::adapters::StoreSpec,
    /// `FTHUB_STORAGE_API_VERSION`: the storage service version to speak.
    pub storage_api_version: String,
    /// `FTHUB_EMULATOR_URL`: the emulator of the local topology (default
    /// `http://127.0.0.1:7072`).
    pub emulator_url: String,
    /// `FTHUB_EMULATOR_KEY`: the API key sent to the emulator (tests plant a recognisable
    /// one and prove it never reaches a log, report or record).
    pub emulator_key: String,
    /// `FTHUB_AVAILABILITY`: a file replacing the shipped table of where Azure offers
    /// fine-tuned deployments (`data/availability.json`'s shape).
    pub availability: Option<PathBuf>,
    /// Pipeline tuning; each has a default.
    pub tuning: Tuning,
}

/// Optional pipeline settings, each `None` when unset (the pipeline's default applies).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tuning {
    /// `FTHUB_CLAIM_TTL_SECONDS`: a side-effect claim not renewed for this long belongs to a
    /// dead invocation (default 90; a live one renews it every third of that).
    pub claim_ttl: Option<Duration>,
    /// `FTHUB_CLAIM_WAIT_SECONDS`: how long a duplicate waits for a live claim (240).
    pub claim_wait: Option<Duration>,
    /// `FTHUB_RECONCILE_GRACE_SECONDS`: idle time before the reconciler re-drives a step a
    /// message should have driven (120).
    pub reconcile_grace: Option<Duration>,
    /// `FTHUB_EVAL_BUDGET_SECONDS`: scoring time per invocation before an evaluation pauses
    /// (360).
    pub eval_budget: Option<Duration>,
    /// `FTHUB_EVAL_CAP`: held-out examples scored at most; larger sets are sampled (10,000).
    pub eval_cap: Option<usize>,
    /// `FTHUB_EVAL_BATCH`: examples per stored evaluation batch (50).
    pub eval_batch: Option<usize>,
    /// `FTHUB_KEEPALIVE_BUDGET_SECONDS`: how long one KeepWarm pass may take (240).
    pub keepalive_budget: Option<Duration>,
    /// `FTHUB_RPM_PER_UNIT`: requests per minute per capacity unit, where a contract differs
    /// from the documented table (6 for chat models, 1 for o-series).
    pub rpm_per_unit: Option<f64>,
}

/// Blob containers the pipeline reads and writes (declared in `infra/main.bicep`).
pub const CONTAINERS: [&str; 4] = ["datasets", "reports", "state", "audit"];

/// App settings the handler reads in Azure (declared in `infra/modules/functionapp.bicep`),
/// besides the host's own connection settings.
pub const AZURE_SETTINGS: [&str; 2] = ["FTHUB_TOPOLOGY", "FTHUB_LOG_FORMAT"];

/// Settings the App Service platform sets in Azure and Core Tools does not: their presence
/// means the handler runs in Azure. `WEBSITE_SITE_NAME` is documented in the app settings
/// reference; `WEBSITE_SKU` (`FlexConsumption` on Flex) is read by the Functions host's own
/// environment checks. `CONTAINER_NAME`, which Flex also sets, is left out: container
/// runtimes on a laptop set it too.
pub const AZURE_MARKERS: [&str; 2] = ["WEBSITE_SITE_NAME", "WEBSITE_SKU"];

/// Default handler port when no host set one.
pub const DEFAULT_PORT: u16 = 3000;

/// Name of the local state directory.
pub const DEFAULT_HOME: &str = ".fthub";

impl Settings {
    /// Reads the settings from the process environment.
    ///
    /// # Errors
    /// See [`SettingsError`].
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (tests pass a map).
    ///
    /// # Errors
    /// See [`SettingsError`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let set = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let port = match set("FUNCTIONS_CUSTOMHANDLER_PORT")
            .or_else(|| set("FUNCTIONS_HTTPWORKER_PORT"))
        {
            Some(p) => p.trim().parse().map_err(|_| SettingsError::Port(p))?,
            None => DEFAULT_PORT,
        };
        let home = set("FTHUB_HOME").map_or_else(|| PathBuf::from(DEFAULT_HOME), PathBuf::from);
        let topology = set("FTHUB_TOPOLOGY").map(PathBuf::from);
        // Core Tools runs on a laptop even when a copied app setting looks like Azure's.
        let core_tools =
            set("FUNCTIONS_CORETOOLS_ENVIRONMENT").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if topology.is_none()
            && !core_tools
            && let Some(marker) = AZURE_MARKERS.into_iter().find(|k| set(k).is_some())
        {
            return Err(SettingsError::NoTopologyInAzure { marker });
        }
        let storage = crate::adapters::StoreSpec::from_settings(&get, &home)
            .map_err(|e| SettingsError::Storage(e.to_string()))?;
        let seconds = |k: &'static str| -> Result<Option<Duration>, SettingsError> {
            set(k)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map(Duration::from_secs)
                        .map_err(|_| SettingsError::Number { name: k, value: v })
                })
                .transpose()
        };
        let count = |k: &'static str| -> Result<Option<usize>, SettingsError> {
            set(k)
                .map(|v| match v.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(SettingsError::Number { name: k, value: v }),
                })
                .transpose()
        };
        Ok(Self {
            port,
            home,
            topology,
            storage,
            storage_api_version: set("FTHUB_STORAGE_API_VERSION")
                .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned()),
            emulator_url: set("FTHUB_EMULATOR_URL")
                .unwrap_or_else(|| "http://127.0.0.1:7072".into()),
            emulator_key: set("FTHUB_EMULATOR_KEY").unwrap_or_else(|| "local".into()),
            availability: set("FTHUB_AVAILABILITY").map(PathBuf::from),
            tuning: Tuning {
                claim_ttl: seconds("FTHUB_CLAIM_TTL_SECONDS")?,
                claim_wait: seconds("FTHUB_CLAIM_WAIT_SECONDS")?,
                reconcile_grace: seconds("FTHUB_RECONCILE_GRACE_SECONDS")?,
                eval_budget: seconds("FTHUB_EVAL_BUDGET_SECONDS")?,
                eval_cap: count("FTHUB_EVAL_CAP")?,
                eval_batch: count("FTHUB_EVAL_BATCH")?,
                keepalive_budget: seconds("FTHUB_KEEPALIVE_BUDGET_SECONDS")?,
                rpm_per_unit: set("FTHUB_RPM_PER_UNIT")
                    .map(|v| match v.trim().parse::<f64>() {
                        Ok(n) if n > 0.0 && n.is_finite() => Ok(n),
                        _ => Err(SettingsError::Number {
                            name: "FTHUB_RPM_PER_UNIT",
                            value: v,
                        }),
                    })
                    .transpose()?,
            },
        })
    }
}

/// Invalid settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The port variable is not a number in 0..=65535.
    #[error("FUNCTIONS_CUSTOMHANDLER_PORT is {0:?}, not a port number")]
    Port(String),
    /// The storage setting is malformed.
    #[error("storage setting: {0}")]
    Storage(String),
    /// A numeric setting that is not a positive number.
    #[error("{name} is {value:?}, not a positive number")]
    Number {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// Running in Azure without a topology: the built-in one targets an emulator on loopback.
    #[error(
        "FTHUB_TOPOLOGY is not set, and this process runs in Azure ({marker} is set): set FTHUB_TOPOLOGY to the topology file written by scripts/package"
    )]
    NoTopologyInAzure {
        /// The platform setting that showed it.
        marker: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn with_no_settings_the_handler_uses_local_defaults() {
        let c = cfg(&[]).expect("defaults");
        assert_eq!(c.port, 3000);
        assert_eq!(c.home, PathBuf::from(".fthub"));
        assert_eq!(c.emulator_url, "http://127.0.0.1:7072");
        assert_eq!(c.tuning, Tuning::default());
    }

    #[test]
    fn the_hosts_port_wins_over_the_legacy_name_and_bad_ports_are_refused() {
        assert_eq!(
            cfg(&[
                ("FUNCTIONS_CUSTOMHANDLER_PORT", "4100"),
                ("FUNCTIONS_HTTPWORKER_PORT", "1")
            ])
            .expect("ok")
            .port,
            4100
        );
        assert_eq!(
            cfg(&[("FUNCTIONS_HTTPWORKER_PORT", "4200")])
                .expect("ok")
                .port,
            4200
        );
        assert!(cfg(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "x")]).is_err());
    }

    #[test]
    fn in_azure_a_missing_topology_is_an_error_naming_the_setting() {
        let e = cfg(&[("WEBSITE_SITE_NAME", "func-fthub")]).expect_err("azure");
        assert!(e.to_string().contains("FTHUB_TOPOLOGY"), "{e}");
        assert!(e.to_string().contains("WEBSITE_SITE_NAME"), "{e}");
        assert!(
            cfg(&[
                ("WEBSITE_SKU", "FlexConsumption"),
                ("FTHUB_TOPOLOGY", "/t.json")
            ])
            .is_ok()
        );
        assert!(
            cfg(&[
                ("WEBSITE_SITE_NAME", "func-fthub"),
                ("FUNCTIONS_CORETOOLS_ENVIRONMENT", "True")
            ])
            .is_ok(),
            "Core Tools on a laptop"
        );
    }

    #[test]
    fn tuning_settings_are_read_once_and_bad_numbers_are_named() {
        let c = cfg(&[("FTHUB_EVAL_CAP", "500"), ("FTHUB_CLAIM_TTL_SECONDS", "30")]).expect("ok");
        assert_eq!(c.tuning.eval_cap, Some(500));
        assert_eq!(c.tuning.claim_ttl, Some(Duration::from_secs(30)));
        let e = cfg(&[("FTHUB_EVAL_BATCH", "0")]).expect_err("zero");
        assert!(e.to_string().contains("FTHUB_EVAL_BATCH"), "{e}");
    }
}
