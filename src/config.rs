//! Settings read once at start-up from the environment (app settings in Azure,
//! `local.settings.json` values under `fthub dev`). With nothing set, everything falls
//! back to local defaults so `fthub serve` starts anywhere.
//!
//! Optional settings the handler also reads: `FTHUB_STORAGE` (a connection string or blob
//! service URL when pipeline data lives outside `AzureWebJobsStorage`),
//! `FTHUB_STORAGE_API_VERSION` (the storage service version to speak), and the side-effect
//! claim's lifetime and a duplicate's wait (`FTHUB_CLAIM_TTL_SECONDS`, default 660, must
//! exceed the function timeout; `FTHUB_CLAIM_WAIT_SECONDS`, default 240).

use std::path::PathBuf;

/// `fthub serve` settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Port on 127.0.0.1: `FUNCTIONS_CUSTOMHANDLER_PORT`, else the legacy
    /// `FUNCTIONS_HTTPWORKER_PORT`, else 3000.
    pub port: u16,
    /// The local state directory: `FTHUB_HOME`, else `.fthub` in the working directory.
    pub home: PathBuf,
    /// `FTHUB_TOPOLOGY`: the topology file (written by `scripts/package` in Azure); `None`
    /// selects the built-in local topology.
    pub topology: Option<PathBuf>,
    /// Where blobs live: `FTHUB_STORAGE`, else the host's identity-based
    /// `AzureWebJobsStorage__blobServiceUri` / `__accountName`, else `{home}/storage`.
    pub storage: crate::adapters::StoreSpec,
}

/// Blob containers the pipeline reads and writes (declared in `infra/main.bicep`).
pub const CONTAINERS: [&str; 4] = ["datasets", "reports", "state", "audit"];

/// App settings the handler reads in Azure (declared in `infra/modules/functionapp.bicep`),
/// besides the host's own connection settings.
pub const AZURE_SETTINGS: [&str; 2] = ["FTHUB_TOPOLOGY", "FTHUB_LOG_FORMAT"];

/// Default handler port when no host set one.
pub const DEFAULT_PORT: u16 = 3000;

/// Name of the local state directory.
pub const DEFAULT_HOME: &str = ".fthub";

impl ServeConfig {
    /// Reads the settings from the process environment.
    ///
    /// # Errors
    /// When a port variable is set but is not a port number.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (tests pass a map).
    ///
    /// # Errors
    /// When a port variable is set but is not a port number.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let port = match get("FUNCTIONS_CUSTOMHANDLER_PORT")
            .or_else(|| get("FUNCTIONS_HTTPWORKER_PORT"))
        {
            Some(p) => p.trim().parse().map_err(|_| ConfigError::Port(p))?,
            None => DEFAULT_PORT,
        };
        let home = get("FTHUB_HOME")
            .filter(|h| !h.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_HOME), PathBuf::from);
        let topology = get("FTHUB_TOPOLOGY")
            .filter(|t| !t.is_empty())
            .map(PathBuf::from);
        let storage = crate::adapters::StoreSpec::from_settings(&get, &home)
            .map_err(|e| ConfigError::Storage(e.to_string()))?;
        Ok(Self {
            port,
            home,
            topology,
            storage,
        })
    }
}

/// Invalid settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The port variable is not a number in 0..=65535.
    #[error("FUNCTIONS_CUSTOMHANDLER_PORT is {0:?}, not a port number")]
    Port(String),
    /// The storage setting is malformed.
    #[error("storage setting: {0}")]
    Storage(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<ServeConfig, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ServeConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn with_no_settings_the_handler_uses_local_defaults() {
        let c = cfg(&[]).expect("defaults");
        assert_eq!(c.port, 3000);
        assert_eq!(c.home, PathBuf::from(".fthub"));
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
}
