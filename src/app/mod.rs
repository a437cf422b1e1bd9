//! The composition root: one [`Settings`] in, the adapters built, the services wired.
//! Nothing else builds an adapter for the handler; services see ports only.

pub mod settings;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use settings::{Settings, SettingsError, Tuning};

use crate::adapters::OpenStoreError;
use crate::adapters::azure::arm::Arm;
use crate::adapters::azure::credential::{CredentialError, Entra};
use crate::adapters::azure::dataplane::{DataPlane, GA_API_VERSION, Surface};
use crate::adapters::azure::keyvault::KeyVaultKeys;
use crate::adapters::azure::{Auth, Http, LocalTokens, RetryPolicy, Secret, TokenSource};
use crate::domain::availability::Availability;
use crate::domain::topology::{Topology, TopologyError};
use crate::ports::{BlobStore, Inference};
use crate::services::pipeline::Pipeline;

/// In a topology file, stands for the emulator's URL (`FTHUB_EMULATOR_URL`): such a
/// topology describes a local estate on the emulator and is used with the emulator's key.
pub const EMULATOR_PLACEHOLDER: &str = "{emulator}";

/// Shared handler state: what the functions use.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Blob storage (state, audit, reports, datasets).
    pub store: Arc<dyn BlobStore>,
    /// The pipeline over the topology's accounts.
    pub pipeline: Arc<Pipeline>,
    /// Process start, for the status API.
    pub started: Instant,
}

/// Why the handler cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The settings are invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The topology file could not be read.
    #[error("cannot read the topology {path}")]
    Read {
        /// Path.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The topology is invalid.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The availability table given in `FTHUB_AVAILABILITY` does not decode.
    #[error("FTHUB_AVAILABILITY {path}: {reason}")]
    Availability {
        /// Path.
        path: String,
        /// Why.
        reason: String,
    },
    /// No Entra identity could be set up.
    #[error(transparent)]
    Identity(#[from] CredentialError),
    /// The blob store could not be opened.
    #[error(transparent)]
    Store(#[from] OpenStoreError),
}

impl AppState {
    /// Builds everything from `settings`: with a topology file, its accounts with the
    /// process's Entra identity (managed identity in Azure); without, the local topology on
    /// the emulator with an API key.
    ///
    /// # Errors
    /// An unreadable or invalid topology, a bad storage setting, or no identity.
    pub fn build(settings: &Settings) -> Result<Self, StartError> {
        // One identity for storage, the data plane and ARM, built only if something needs it.
        let identity = std::sync::OnceLock::<Entra>::new();
        let entra = || -> Result<Entra, CredentialError> {
            if let Some(e) = identity.get() {
                return Ok(e.clone());
            }
            let e = Entra::from_env()?;
            Ok(identity.get_or_init(|| e).clone())
        };
        let store = settings
            .storage
            .open(&settings.storage_api_version, entra)?;
        tracing::info!(storage = %settings.storage.describe(), "Blob store selected.");
        let http = Http::new(RetryPolicy::default());
        let (topology, data_auth, arm_tokens): (Topology, Auth, Arc<dyn TokenSource>) =
            match &settings.topology {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(path).map_err(|source| StartError::Read {
                            path: path.display().to_string(),
                            source,
                        })?;
                    if text.contains(EMULATOR_PLACEHOLDER) {
                        // A local estate described by a file (other limits, projects,
                        // approvers) on the emulator: the emulator's key, not Entra ID.
                        let text = text.replace(
                            EMULATOR_PLACEHOLDER,
                            settings.emulator_url.trim_end_matches('/'),
                        );
                        let key = settings.emulator_key.clone();
                        let t = Topology::from_json(&text)?;
                        let tokens = LocalTokens::new(&t.hub.tenant, Secret::new(key.clone()));
                        (t, Auth::ApiKey(Secret::new(key)), Arc::new(tokens))
                    } else {
                        let t = Topology::from_json(&text)?;
                        let id: Arc<dyn TokenSource> = Arc::new(entra()?);
                        (t, Auth::Bearer(id.clone()), id)
                    }
                }
                None => {
                    let t = Topology::local(&settings.emulator_url);
                    t.validate()?;
                    let key = settings.emulator_key.clone();
                    let tokens = LocalTokens::new(&t.hub.tenant, Secret::new(key.clone()));
                    (t, Auth::ApiKey(Secret::new(key)), Arc::new(tokens))
                }
            };
        let availability = match &settings.availability {
            None => Availability::built_in(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| StartError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                Availability::from_json(&text).map_err(|e| StartError::Availability {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?
            }
        };
        // Refuse at start what Azure would refuse at the first promotion.
        topology.check_availability(&availability)?;
        let mut pipeline = pipeline(
            store.clone(),
            topology,
            &http,
            &data_auth,
            arm_tokens,
            Duration::from_millis(250),
        );
        tune(&mut pipeline, &settings.tuning);
        pipeline.availability = Arc::new(availability);
        // Customer-provided keys come from Key Vault with the same identity, in Azure mode
        // and whenever storage is reached with Entra ID.
        let on_emulator = matches!(data_auth, Auth::ApiKey(_));
        if !on_emulator || settings.storage.needs_identity() {
            pipeline.keys = Some(Arc::new(KeyVaultKeys::new(entra()?.credential())));
        }
        Ok(Self {
            store,
            pipeline: Arc::new(pipeline),
            started: Instant::now(),
        })
    }
}

/// Applies the optional settings over the pipeline's defaults.
pub fn tune(p: &mut Pipeline, t: &Tuning) {
    let set = |slot: &mut Duration, v: Option<Duration>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut p.claim_ttl, t.claim_ttl);
    set(&mut p.claim_wait, t.claim_wait);
    set(&mut p.reconcile_grace, t.reconcile_grace);
    set(&mut p.eval_budget, t.eval_budget);
    set(&mut p.keepalive_budget, t.keepalive_budget);
    if let Some(n) = t.eval_cap {
        p.eval_cap = n;
    }
    if let Some(n) = t.eval_batch {
        p.eval_batch = n;
    }
    if t.rpm_per_unit.is_some() {
        p.rpm_per_unit = t.rpm_per_unit;
    }
}

/// A pipeline on the topology's accounts: one data-plane client per account on the shared
/// HTTP core, ARM for deployments polled every `poll`.
pub fn pipeline(
    store: Arc<dyn BlobStore>,
    topology: Topology,
    http: &Http,
    data_auth: &Auth,
    arm_tokens: Arc<dyn TokenSource>,
    poll: Duration,
) -> Pipeline {
    // Each account's data plane signs in to the account's own tenant.
    let plane = |a: &crate::domain::topology::Account| {
        Arc::new(
            DataPlane::new(
                http.clone(),
                &a.endpoint,
                Surface::Dated(GA_API_VERSION.into()),
                data_auth.clone(),
            )
            .in_tenant((a.tenant != topology.hub.tenant).then(|| a.tenant.clone())),
        )
    };
    let hub = plane(&topology.hub);
    let mut inference: BTreeMap<String, Arc<dyn Inference>> = BTreeMap::new();
    inference.insert(topology.hub.name.clone(), hub.clone());
    for s in topology.environments.values().flat_map(|e| e.spokes.iter()) {
        inference.insert(s.name.clone(), plane(s));
    }
    let arm = Arc::new(
        Arm::new(
            http.clone(),
            &topology.arm_endpoint,
            arm_tokens,
            &topology.hub.tenant,
        )
        .with_polling(poll, Duration::from_secs(600)),
    );
    Pipeline::new(store, topology, hub, inference, arm)
}
