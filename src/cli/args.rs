//! Arguments several subcommands share, and the store they open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `--home`: the local state directory `fthub dev` serves.
#[derive(Debug, clap::Args)]
pub struct Home {
    /// Local state directory.
    #[arg(long, env = "FTHUB_HOME", default_value = fthub::app::settings::DEFAULT_HOME)]
    pub home: PathBuf,
}

/// `--storage`.
#[derive(Debug, clap::Args)]
pub struct StorageArg {
    /// Blob storage: a connection string (Azurite: `UseDevelopmentStorage=true`), a blob
    /// service URL or an account name (Entra ID: `az login`); default the local store.
    #[arg(long, env = "FTHUB_STORAGE", hide_env_values = true)]
    pub storage: Option<String>,
}

/// `--url` and `--code`: the app's HTTP API.
#[derive(Debug, clap::Args)]
pub struct AppArg {
    /// Base URL of the host: the function app, or an `fthub dev` (default: the one watching
    /// $FTHUB_HOME or ./.fthub, else http://127.0.0.1:7071).
    #[arg(long, env = "FTHUB_URL")]
    url: Option<String>,
    /// Function key for a deployed app (the Status function's auth level is `function`).
    #[arg(long, env = "FTHUB_FUNCTION_KEY", hide_env_values = true)]
    pub code: Option<String>,
}

impl AppArg {
    /// The base URL to call.
    pub fn base(&self) -> String {
        self.url.clone().unwrap_or_else(|| {
            let home = std::env::var_os("FTHUB_HOME").map_or_else(
                || PathBuf::from(fthub::app::settings::DEFAULT_HOME),
                PathBuf::from,
            );
            fthub::local::watch::Watch::find(&home)
                .map_or_else(|| "http://127.0.0.1:7071".to_owned(), |w| w.url)
        })
    }
}

/// `--actor` and `--reason`.
#[derive(Debug, clap::Args)]
pub struct WhoWhy {
    /// Who acts (recorded on the run).
    #[arg(long, env = "USER", default_value = "operator")]
    pub actor: String,
    /// Why (recorded on the run).
    #[arg(long, default_value = "no reason given")]
    pub reason: String,
}

/// `--bus`.
#[derive(Debug, clap::Args)]
pub struct BusArg {
    /// Service Bus: a namespace (`sb-fthub` or its host name; Entra ID) or a connection
    /// string; default the local bus of `fthub dev`.
    #[arg(long, env = "FTHUB_SERVICE_BUS", hide_env_values = true)]
    pub bus: Option<String>,
}

/// The store a command works on: `--storage` or the local store under `home`.
pub fn open_store(
    storage: Option<&str>,
    home: &Path,
) -> anyhow::Result<Arc<dyn fthub::ports::BlobStore>> {
    let spec = fthub::adapters::StoreSpec::parse(storage.unwrap_or("local"), home)?;
    let version = std::env::var("FTHUB_STORAGE_API_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| fthub::adapters::azure::storage::DEFAULT_API_VERSION.to_owned());
    Ok(spec.open(
        &version,
        fthub::adapters::azure::credential::Entra::from_env,
    )?)
}

/// A Status view, the same document either way: read straight from `storage` when given,
/// else from the app's API at `app`.
pub async fn status_view(
    storage: Option<&str>,
    app: &AppArg,
    path: &str,
    query: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context as _;
    match storage {
        Some(s) => {
            let store = open_store(Some(s), Path::new("."))?;
            Ok(
                fthub::services::status::view(store.as_ref(), None, path, query)
                    .await
                    .context("reading status from storage")?
                    .1,
            )
        }
        None => {
            let qs = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query)
                .finish();
            let path = if qs.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{qs}")
            };
            Ok(
                fthub::commands::ops::status_with_key(&app.base(), &path, app.code.as_deref())
                    .await?,
            )
        }
    }
}

/// `$USER`, or `fallback`.
pub fn user_or(fallback: &str) -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}
