//! The real server the integration tests talk to, and helpers to run the
//! `ferry` binary against it.
//!
//! If FERRY_TEST_ENDPOINT is set (scripts/test.sh starts Garage and sets
//! it), that server is used; otherwise the harness starts a fresh Garage
//! itself with scripts/garage.sh, tied to this process so it never outlives
//! the test run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use ferry::store::credentials::Credentials;
use ferry::store::dialect::Addressing;
use ferry::store::dialect::Dialect;
use ferry::store::http::{HttpStore, HttpStoreConfig};
use ferry::store::sign::Scheme;
use ferry::store::ObjectStore;

pub struct Server {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    _dir: Option<tempfile::TempDir>,
}

static SERVER: OnceLock<Server> = OnceLock::new();

pub fn read_env_file(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).expect("garage env file");
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches('\'').trim_matches('"').to_string(),
            )
        })
        .collect()
}

pub fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        let from_env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(endpoint) = from_env("FERRY_TEST_ENDPOINT") {
            return Server {
                endpoint,
                region: from_env("FERRY_TEST_REGION").unwrap_or_else(|| "garage".into()),
                bucket: from_env("FERRY_TEST_BUCKET").expect("FERRY_TEST_BUCKET"),
                access_key: from_env("FERRY_TEST_ACCESS_KEY_ID").expect("FERRY_TEST_ACCESS_KEY_ID"),
                secret_key: from_env("FERRY_TEST_SECRET_ACCESS_KEY")
                    .expect("FERRY_TEST_SECRET_ACCESS_KEY"),
                _dir: None,
            };
        }
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/garage.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(dir.path())
            .arg("--watch-pid")
            .arg(std::process::id().to_string())
            .output()
            .expect("run scripts/garage.sh");
        assert!(
            out.status.success(),
            "could not start Garage (install it with `scripts/garage.sh install`, or run scripts/test.sh):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = read_env_file(&dir.path().join("env"));
        Server {
            endpoint: env["FERRY_TEST_ENDPOINT"].clone(),
            region: env["FERRY_TEST_REGION"].clone(),
            bucket: env["FERRY_TEST_BUCKET"].clone(),
            access_key: env["FERRY_TEST_ACCESS_KEY_ID"].clone(),
            secret_key: env["FERRY_TEST_SECRET_ACCESS_KEY"].clone(),
            _dir: Some(dir),
        }
    })
}

impl Server {
    pub fn credentials(&self) -> Credentials {
        Credentials {
            access_key_id: self.access_key.clone(),
            secret_access_key: self.secret_key.clone(),
            session_token: None,
        }
    }

    /// A client of ferry's own, for setting up and checking state.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store_at(&self.endpoint)
    }

    pub fn store_at(&self, endpoint: &str) -> Arc<dyn ObjectStore> {
        let mut cfg = HttpStoreConfig::new(
            url::Url::parse(endpoint).unwrap(),
            Dialect::S3,
            Scheme::S3V4 {
                region: self.region.clone(),
            },
            Addressing::Path,
        );
        cfg.credentials = Some(Arc::new(self.credentials()));
        Arc::new(HttpStore::new(cfg).unwrap())
    }

    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }
}

/// A unique key prefix per test so tests can share the bucket.
pub fn unique(name: &str) -> String {
    format!("{name}-{:08x}", rand::random::<u32>())
}

pub struct Ferry {
    pub home: tempfile::TempDir,
    pub endpoint: String,
    pub extra_env: Vec<(String, String)>,
}

impl Ferry {
    pub fn new() -> Self {
        Self::at(&server().endpoint)
    }

    /// Runs ferry against `endpoint` (e.g. a proxy in front of the server).
    pub fn at(endpoint: &str) -> Self {
        Ferry {
            home: tempfile::tempdir().unwrap(),
            endpoint: endpoint.to_string(),
            extra_env: Vec::new(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let s = server();
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("AWS_ACCESS_KEY_ID", &s.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &s.secret_key)
            .env("AWS_REGION", &s.region)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            // No probing of Alibaba's instance metadata address: a closed
            // port answers at once (tests that want one set their own).
            .env("FERRY_ECS_METADATA_ENDPOINT", "http://127.0.0.1:9");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run ferry")
    }

    /// Runs and asserts success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ferry {args:?} failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Runs ferry (with `ferry`'s environment, `home` as HOME) as the
/// unprivileged user 65534: root reads everything, so unreadable files and
/// directories can only be tested this way. `home` is made writable for it.
pub fn run_unprivileged(ferry: &Ferry, home: &Path, args: &[&str]) -> Output {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .args(args);
    for (k, v) in ferry.command(&[]).get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.env("HOME", home);
    cmd.output()
        .expect("setpriv (util-linux) runs ferry as an unprivileged user")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Deterministic pseudo-random content (cheap xorshift), so failures can be
/// reproduced and files do not compress or deduplicate.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn write_file(path: &Path, len: usize, seed: u64) -> PathBuf {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, pattern(len, seed)).unwrap();
    path.to_path_buf()
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}

/// Polls `cond` until it holds or `secs` pass; the assertion is the
/// condition, never the time.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The AWS CLI, an independent client, pointed at the server.
pub fn aws(args: &[&str]) -> Output {
    let s = server();
    Command::new("aws")
        .args(args)
        .arg("--endpoint-url")
        .arg(&s.endpoint)
        .env("AWS_ACCESS_KEY_ID", &s.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &s.secret_key)
        .env("AWS_DEFAULT_REGION", &s.region)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("the AWS CLI (scripts/test.sh installs it)")
}

/// `aws s3api head-object --checksum-mode ENABLED`, as JSON.
pub fn aws_head(key: &str) -> serde_json::Value {
    aws_head_with(key, &[])
}

/// As [`aws_head`], with more arguments (an SSE-C key, say).
pub fn aws_head_with(key: &str, extra: &[&str]) -> serde_json::Value {
    let s = server();
    let mut args = vec![
        "s3api",
        "head-object",
        "--bucket",
        &s.bucket,
        "--key",
        key,
        "--checksum-mode",
        "ENABLED",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = aws(&args);
    assert!(out.status.success(), "head-object {key}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Parts the server lists for the one open upload of `key`, via the AWS CLI.
pub fn aws_listed_parts(key: &str) -> Option<Vec<(u64, u64)>> {
    let s = server();
    let out = aws(&[
        "s3api",
        "list-multipart-uploads",
        "--bucket",
        &s.bucket,
        "--prefix",
        key,
        "--output",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let id = v["Uploads"].as_array()?.iter().find(|u| u["Key"] == key)?["UploadId"]
        .as_str()?
        .to_string();
    let out = aws(&[
        "s3api",
        "list-parts",
        "--bucket",
        &s.bucket,
        "--key",
        key,
        "--upload-id",
        &id,
        "--output",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(
        v["Parts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p["PartNumber"].as_u64().unwrap(),
                            p["Size"].as_u64().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// Downloads with the AWS CLI and returns the content's SHA-256.
pub fn aws_sha256(key: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("obj");
    let out = aws(&["s3", "cp", &server().url(key), dest.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "aws s3 cp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sha256_file(&dest)
}

/// A progress sink that keeps the notices, so tests can check what the
/// user was told.
#[derive(Default)]
pub struct Notes(pub std::sync::Mutex<Vec<String>>);

impl ferry::transfer::Progress for Notes {
    fn note(&self, msg: &str) {
        self.0.lock().unwrap().push(msg.to_string());
    }
}

impl Notes {
    pub fn joined(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// Every regular file under `root`, relative, sorted.
pub fn files(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(root).unwrap().to_path_buf())
        .collect();
    out.sort();
    out
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
