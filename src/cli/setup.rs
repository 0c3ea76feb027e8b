//! What every command needs before it can talk to a store: the config file,
//! one HTTP client per scheme (so every transfer shares one connection
//! pool), and cancellation.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::args::{GlobalArgs, TransferArgs};
use super::progress::Reporter;
use super::CliError;
use crate::checksum::ChecksumChoice;
use crate::config::{resolve_endpoint, ConfigFile, EndpointFlags, ProcessEnv};
use crate::location::RemoteUrl;
use crate::store::bandwidth::Bandwidth;
use crate::store::dialect::Dialect;
use crate::store::http::{HttpStore, HttpStoreConfig};
use crate::store::retry::RetryPolicy;
use crate::store::ObjectStore;
use crate::transfer::{Cancel, Context, Progress, Requested, TransferOptions};

#[derive(Clone)]
pub struct StoreHandle {
    pub store: Arc<dyn ObjectStore>,
    /// The endpoint URL, naming the server in checkpoints and messages.
    pub endpoint_id: String,
    pub dialect: Dialect,
    pub checksum: ChecksumChoice,
}

pub struct Setup {
    flags: EndpointFlags,
    retries: u32,
    pub file: Arc<ConfigFile>,
    bandwidth: Option<Arc<Bandwidth>>,
    customer_key: Option<PathBuf>,
    stores: Mutex<HashMap<Dialect, StoreHandle>>,
    pub cancel: Cancel,
    pub reporter: Arc<Reporter>,
}

impl Setup {
    pub fn new(g: &GlobalArgs, cancel: Cancel) -> Result<Self, CliError> {
        let file = crate::config::load(g.config.as_deref(), &ProcessEnv)?;
        if g.retries == 0 {
            return Err(CliError::Usage("--retries must be at least 1".into()));
        }
        Ok(Setup {
            flags: EndpointFlags {
                endpoint: g.endpoint.first().cloned(),
                more_endpoints: g.endpoint.iter().skip(1).cloned().collect(),
                region: g.region.clone(),
                addressing: g.addressing_style,
                signature_version: g.signature_version,
                profile: g.profile.clone(),
                no_sign_request: g.no_sign_request,
                idle_timeout: g.idle_timeout,
                checksum_algorithm: g.checksum_algorithm,
                requester_pays: g.requester_pays,
                ca_bundle: g.ca_bundle.clone(),
            },
            retries: g.retries,
            file: Arc::new(file),
            bandwidth: g.bwlimit.map(|b| Arc::new(Bandwidth::new(b))),
            customer_key: g.sse_c_key_file.clone(),
            stores: Mutex::new(HashMap::new()),
            cancel,
            reporter: Arc::new(Reporter::new(g.quiet)),
        })
    }

    /// The setup for a config-file job: its profile and bandwidth limit
    /// apply unless the command line set them.
    pub fn for_job(&self, profile: Option<String>, bwlimit: Option<u64>) -> Setup {
        let mut flags = self.flags.clone();
        if flags.profile.is_none() {
            flags.profile = profile;
        }
        Setup {
            flags,
            retries: self.retries,
            file: self.file.clone(),
            bandwidth: self
                .bandwidth
                .clone()
                .or_else(|| bwlimit.map(|b| Arc::new(Bandwidth::new(b)))),
            customer_key: self.customer_key.clone(),
            stores: Mutex::new(HashMap::new()),
            cancel: self.cancel.clone(),
            reporter: self.reporter.clone(),
        }
    }

    /// The setup a copy's source is reached with (`--source-endpoint`,
    /// `--source-profile`); the same stores when neither is given.
    pub fn for_source(&self, endpoint: Option<String>, profile: Option<String>) -> Option<Setup> {
        if endpoint.is_none() && profile.is_none() {
            return None;
        }
        let mut flags = self.flags.clone();
        if profile.is_some() {
            // The profile's endpoint, unless one is named for the source.
            flags.profile = profile;
            flags.endpoint = None;
            flags.more_endpoints.clear();
        }
        if let Some(e) = endpoint {
            flags.endpoint = Some(e);
            flags.more_endpoints.clear();
        }
        Some(Setup {
            flags,
            retries: self.retries,
            file: self.file.clone(),
            bandwidth: self.bandwidth.clone(),
            customer_key: self.customer_key.clone(),
            stores: Mutex::new(HashMap::new()),
            cancel: self.cancel.clone(),
            reporter: self.reporter.clone(),
        })
    }

    /// Where this run's credentials for `dialect` come from, and their key id.
    pub fn credential_source(
        &self,
        dialect: Dialect,
    ) -> Result<Option<(String, String)>, crate::config::ConfigError> {
        crate::config::endpoint::credential_source(dialect, &self.flags, &self.file, &ProcessEnv)
    }

    pub fn store_for(&self, url: &RemoteUrl) -> Result<StoreHandle, CliError> {
        if let Some(h) = self.stores.lock().unwrap().get(&url.dialect) {
            return Ok(h.clone());
        }
        let s = resolve_endpoint(url.dialect, &self.flags, &self.file, &ProcessEnv)?;
        let mut cfg = HttpStoreConfig::new(s.endpoint.clone(), s.dialect, s.scheme, s.addressing);
        cfg.more_endpoints = s.more_endpoints.clone();
        // Credentials are found now, not at the first request: a run with
        // none stops here with the reason (exit 2), and a role or instance
        // profile is asked once before the transfers start.
        if let Some(source) = &s.credentials {
            let handle = tokio::runtime::Handle::current();
            tokio::task::block_in_place(|| handle.block_on(source.credentials()))
                .map_err(|e| CliError::Usage(e.message))?;
        }
        cfg.credentials = s.credentials;
        cfg.idle_timeout = s.idle_timeout;
        cfg.requester_pays = s.requester_pays;
        if let Some(path) = &s.ca_bundle {
            cfg.ca_certificates = std::fs::read(path)
                .map_err(|e| CliError::Usage(format!("CA bundle {}: {e}", path.display())))?;
            cfg.ca_bundle_name = Some(path.display().to_string());
        }
        cfg.bandwidth = self.bandwidth.clone();
        cfg.customer_key =
            match &self.customer_key {
                None => None,
                Some(_) if s.dialect == Dialect::Oss => return Err(CliError::Usage(
                    "--sse-c-key-file applies to s3:// only (OSS has no customer-provided keys)"
                        .into(),
                )),
                Some(path) => {
                    let bytes = std::fs::read(path).map_err(|e| {
                        CliError::Usage(format!("--sse-c-key-file {}: {e}", path.display()))
                    })?;
                    Some(
                        crate::store::sse_c::CustomerKey::from_file_bytes(&bytes).map_err(|e| {
                            CliError::Usage(format!("--sse-c-key-file {}: {e}", path.display()))
                        })?,
                    )
                }
            };
        cfg.retry = RetryPolicy {
            max_attempts: self.retries,
            ..RetryPolicy::default()
        };
        let store = HttpStore::new(cfg).map_err(|e| CliError::Usage(e.to_string()))?;
        tracing::debug!(endpoint = %s.endpoint, region = %s.region, addressing = ?s.addressing, "store");
        let handle = StoreHandle {
            store: Arc::new(store),
            endpoint_id: s.store_id.clone(),
            dialect: s.dialect,
            checksum: s.checksum,
        };
        self.stores
            .lock()
            .unwrap()
            .insert(url.dialect, handle.clone());
        Ok(handle)
    }

    pub fn transfer_options(
        &self,
        a: &TransferArgs,
        h: &StoreHandle,
    ) -> Result<TransferOptions, CliError> {
        let mut opts = TransferOptions::checked(
            Requested {
                bigfile_threshold: a.bigfile_threshold,
                part_size: a.part_size,
                parallel: a.parallel,
                checkpoint_dir: a.checkpoint_dir.clone(),
            },
            &h.endpoint_id,
            h.dialect == Dialect::Oss,
        )?;
        opts.checksum = h.checksum;
        let r = super::object_args::resolve(&a.object, h.dialect).map_err(CliError::Usage)?;
        if r.object.encryption.is_some() && self.customer_key.is_some() {
            return Err(CliError::Usage(
                "--sse and --sse-c-key-file: an object is encrypted with the store's keys or with yours, not both".into(),
            ));
        }
        opts.content_type = r.content_type;
        opts.metadata = r.metadata;
        opts.object = r.object;
        Ok(opts)
    }

    pub fn context(&self, h: &StoreHandle, progress: Arc<dyn Progress>) -> Context {
        Context {
            store: h.store.clone(),
            progress,
            cancel: self.cancel.clone(),
        }
    }
}
