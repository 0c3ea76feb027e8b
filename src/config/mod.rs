//! Configuration: the TOML file (profiles now, jobs later), and how flags,
//! environment and file combine into the settings of one endpoint.
//! Precedence is always flags > environment > file > built-in defaults.

pub mod alibaba;
pub mod aws_chain;
pub mod credentials;
pub mod dirs;
pub mod endpoint;
pub mod file;
pub mod jobs;
pub mod refresh;

pub use endpoint::{resolve_endpoint, EndpointFlags, SignatureVersion};
pub use file::ConfigFile;

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("profile '{0}' is not defined in the config file")]
    UnknownProfile(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    MissingCredentials(String),
}

/// Environment lookups go through this so tests can resolve settings
/// without touching the process environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
    fn home(&self) -> Option<PathBuf> {
        self.var("HOME").map(PathBuf::from)
    }
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for std::collections::HashMap<&str, &str> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|s| s.to_string())
    }
}

/// The config file with its jobs validated: what every command starts from.
pub fn load(explicit: Option<&Path>, env: &dyn Env) -> Result<ConfigFile, ConfigError> {
    let cfg = ConfigFile::read(explicit, env)?;
    cfg.validate_jobs()?;
    Ok(cfg)
}
