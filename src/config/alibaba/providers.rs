//! Fetching temporary credentials the ways Alibaba's SDKs do: the ECS
//! metadata service (IMDSv2 token first), STS AssumeRoleWithOIDC (RRSA)
//! and AssumeRole (signed with the RPC signature), a credentials URI, and
//! an external command. Each sits behind `refresh::Refreshing`, which asks
//! again five minutes before the expiry they report.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;

use super::rpc_sign;
use super::spec::RoleRequest;
use crate::config::refresh::{Fetch, Fetched};
use crate::store::credentials::{CredentialSource, Credentials};
use crate::store::http::transport_cause;
use crate::store::{StoreError, StoreErrorKind};

/// Where the ECS metadata service answers.
pub const ECS_METADATA: &str = "http://100.100.100.200";
const TOKEN_TTL_HEADER: &str = "X-aliyun-ecs-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aliyun-ecs-metadata-token";
const STS_VERSION: &str = "2015-04-01";

fn fail(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::BadCredentials, message)
}

fn client(connect: Duration, total: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(connect)
        .timeout(total)
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

fn text(v: &Value, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| v.get(*n).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `2021-10-20T04:27:09Z` (the SDKs' layout, a case of RFC 3339).
fn parse_expiration(s: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// Keys and expiry from an answer in either spelling Alibaba uses:
/// `AccessKeyId` / `AccessKeySecret` / `SecurityToken` / `Expiration`
/// (metadata service, STS, URI, ossutil's process) or the aliyun CLI's
/// External `access_key_id` / `access_key_secret` / `sts_token` /
/// `expiration`.
pub fn parse_keys(v: &Value, what: &str) -> Result<Fetched, StoreError> {
    let id = text(v, &["AccessKeyId", "access_key_id"]);
    let secret = text(v, &["AccessKeySecret", "access_key_secret"]);
    let (Some(id), Some(secret)) = (id, secret) else {
        return Err(fail(format!(
            "{what} answered without AccessKeyId and AccessKeySecret"
        )));
    };
    let token = text(v, &["SecurityToken", "sts_token", "SessionToken"]);
    if text(v, &["mode"]).is_some_and(|m| m.eq_ignore_ascii_case("StsToken")) && token.is_none() {
        return Err(fail(format!(
            "{what} said mode StsToken but gave no sts_token"
        )));
    }
    let expiry = match text(v, &["Expiration", "expiration"]) {
        Some(e) => Some(
            parse_expiration(&e)
                .ok_or_else(|| fail(format!("{what}: Expiration {e:?} is not a UTC time")))?,
        ),
        None => None,
    };
    Ok((
        Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: token,
        },
        expiry,
    ))
}

fn json(body: &str, what: &str) -> Result<Value, StoreError> {
    serde_json::from_str(body)
        .map_err(|_| fail(format!("{what} answered something that is not JSON")))
}

// --- the ECS metadata service --------------------------------------------------

#[derive(Debug)]
pub struct EcsRamRole {
    pub base: String,
    pub role_name: Option<String>,
    /// `ALIBABA_CLOUD_IMDSV1_DISABLED`: no request without a token.
    pub v1_disabled: bool,
    /// Asked because nothing else was configured: silence then means
    /// "no credentials anywhere", and the message says where to put some.
    pub probed: bool,
    client: reqwest::Client,
}

impl EcsRamRole {
    pub fn new(base: String, role_name: Option<String>, v1_disabled: bool, probed: bool) -> Self {
        EcsRamRole {
            base: base.trim_end_matches('/').to_string(),
            probed,
            role_name,
            v1_disabled,
            // The SDKs give the service a second each way: off ECS the
            // address does not answer, and the chain should say so soon.
            client: client(Duration::from_secs(1), Duration::from_secs(3)),
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> StoreError {
        fail(format!(
            "the ECS metadata service at {} did not answer ({}): this is not an ECS instance, or it has no RAM role",
            self.base,
            transport_cause(e)
        ))
    }

    /// Probed because nothing else was configured: whatever went wrong
    /// means "no credentials anywhere", and the line says where to put some.
    fn nothing_configured(&self, e: StoreError) -> StoreError {
        fail(format!(
            "no credentials for oss://: set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET (or ALIBABA_CLOUD_ACCESS_KEY_ID \
             and ALIBABA_CLOUD_ACCESS_KEY_SECRET), configure a profile (aliyun configure, ~/.alibabacloud/credentials, \
             ossutil config), or pass --no-sign-request for public buckets; not found on this machine as an ECS \
             instance role either ({})",
            e.message
        ))
    }

    /// An IMDSv2 session token; `None` where the service has none and
    /// IMDSv1 is allowed, as the SDKs fall back.
    async fn token(&self) -> Result<Option<String>, StoreError> {
        let r = self
            .client
            .put(format!("{}/latest/api/token", self.base))
            .header(TOKEN_TTL_HEADER, "21600")
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().is_success() => Ok(resp.text().await.ok()),
            _ if !self.v1_disabled => Ok(None),
            Ok(resp) => Err(fail(format!(
                "the ECS metadata service at {} refused a session token (HTTP {}) and IMDSv1 is disabled (ALIBABA_CLOUD_IMDSV1_DISABLED)",
                self.base,
                resp.status().as_u16()
            ))),
            Err(e) => Err(self.unreachable(&e)),
        }
    }

    async fn get(&self, path: &str, token: &Option<String>) -> Result<String, StoreError> {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header(TOKEN_HEADER, t);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if status == 404 {
            let role = match &self.role_name {
                Some(r) => format!("RAM role {r}"),
                None => "RAM role".into(),
            };
            return Err(fail(format!(
                "the ECS metadata service at {} has no {role}: attach one to the instance",
                self.base
            )));
        }
        if !(200..300).contains(&status) {
            return Err(fail(format!(
                "the ECS metadata service at {} answered HTTP {status} for {path}",
                self.base
            )));
        }
        Ok(body)
    }
}

#[async_trait]
impl Fetch for EcsRamRole {
    async fn fetch(&self) -> Result<Fetched, StoreError> {
        match self.ask().await {
            Err(e) if self.probed => Err(self.nothing_configured(e)),
            r => r,
        }
    }
}

impl EcsRamRole {
    async fn ask(&self) -> Result<Fetched, StoreError> {
        const ROLES: &str = "/latest/meta-data/ram/security-credentials/";
        let token = self.token().await?;
        let role = match &self.role_name {
            Some(r) => r.clone(),
            None => {
                let listed = self.get(ROLES, &token).await?;
                listed
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| fail("the ECS instance has no RAM role attached"))?
            }
        };
        let what = format!("the ECS metadata service (role {role})");
        let v = json(&self.get(&format!("{ROLES}{role}"), &token).await?, &what)?;
        if let Some(code) = text(&v, &["Code"]) {
            if code != "Success" {
                return Err(fail(format!("{what} answered Code {code}")));
            }
        }
        temporary(parse_keys(&v, &what)?, &what)
    }
}

/// An STS token must come with its expiry, or it would be used long past
/// it (the metadata service, STS and a URI always send one).
fn temporary(f: Fetched, what: &str) -> Result<Fetched, StoreError> {
    match (&f.0.session_token, f.1) {
        (Some(_), None) => Err(fail(format!(
            "{what} gave an STS token without its Expiration"
        ))),
        _ => Ok(f),
    }
}

/// How long a command's STS token is used when it says no expiry: the
/// command is run again after this (as the SDKs run it again each time).
const PROCESS_TOKEN_LIFE: Duration = Duration::from_secs(15 * 60);

// --- STS ---------------------------------------------------------------------------

fn sts_client() -> reqwest::Client {
    client(Duration::from_secs(5), Duration::from_secs(15))
}

fn timestamp() -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_default()
}

fn form(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                rpc_sign::percent_encode(k),
                rpc_sign::percent_encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn role_form(role: &RoleRequest) -> Vec<(String, String)> {
    let mut f = vec![
        ("RoleArn".to_string(), role.role_arn.clone()),
        ("RoleSessionName".into(), role.session_name.clone()),
        ("DurationSeconds".into(), role.duration_secs.to_string()),
    ];
    if let Some(p) = &role.policy {
        f.push(("Policy".into(), p.clone()));
    }
    f
}

/// One STS call: POST with `query` in the URL and `body` as a form; the
/// credentials of the answer, or one line with STS's Code and Message.
async fn sts_call(
    client: &reqwest::Client,
    role: &RoleRequest,
    action: &str,
    query: Vec<(String, String)>,
    body: Vec<(String, String)>,
) -> Result<Fetched, StoreError> {
    let url = role.sts.url();
    let what = format!("STS {action} at {url} (role {})", role.role_arn);
    let resp = client
        .post(format!("{url}/?{}", form(&query)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&body))
        .send()
        .await
        .map_err(|e| fail(format!("{what}: cannot reach it ({})", transport_cause(&e))))?;
    let status = resp.status().as_u16();
    let text_body = resp.text().await.unwrap_or_default();
    if !(200..300).contains(&status) {
        let v: Value = serde_json::from_str(&text_body).unwrap_or(Value::Null);
        let code = text(&v, &["Code", "code"]).unwrap_or_else(|| format!("HTTP {status}"));
        let message = text(&v, &["Message", "message"]).unwrap_or_default();
        let id = text(&v, &["RequestId", "requestId"])
            .map(|r| format!(" (request {r})"))
            .unwrap_or_default();
        return Err(fail(format!("{what} refused: {code}: {message}{id}")));
    }
    let v = json(&text_body, &what)?;
    let creds = v
        .get("Credentials")
        .ok_or_else(|| fail(format!("{what} answered without Credentials")))?;
    let fetched = temporary(parse_keys(creds, &what)?, &what)?;
    if fetched.0.session_token.is_none() {
        return Err(fail(format!("{what} answered without a SecurityToken")));
    }
    Ok(fetched)
}

fn common(action: &str) -> Vec<(String, String)> {
    vec![
        ("Action".into(), action.into()),
        ("Format".into(), "JSON".into()),
        ("Version".into(), STS_VERSION.into()),
        ("Timestamp".into(), timestamp()),
    ]
}

/// RRSA: the pod's OIDC token, read again on every refresh (the kubelet
/// rotates it), exchanged without a signature.
#[derive(Debug)]
pub struct Oidc {
    pub role: RoleRequest,
    pub provider_arn: String,
    pub token_file: std::path::PathBuf,
    client: reqwest::Client,
}

impl Oidc {
    pub fn new(role: RoleRequest, provider_arn: String, token_file: std::path::PathBuf) -> Self {
        Oidc {
            role,
            provider_arn,
            token_file,
            client: sts_client(),
        }
    }
}

#[async_trait]
impl Fetch for Oidc {
    async fn fetch(&self) -> Result<Fetched, StoreError> {
        let token = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|e| {
                fail(format!(
                    "the OIDC token file {}: {e}",
                    self.token_file.display()
                ))
            })?;
        let mut body = role_form(&self.role);
        body.push(("OIDCProviderArn".into(), self.provider_arn.clone()));
        body.push(("OIDCToken".into(), token));
        sts_call(
            &self.client,
            &self.role,
            "AssumeRoleWithOIDC",
            common("AssumeRoleWithOIDC"),
            body,
        )
        .await
    }
}

/// AssumeRole, signed with the source's keys (which may be temporary
/// themselves: an instance role assuming another).
#[derive(Debug)]
pub struct AssumeRole {
    pub source: Arc<dyn CredentialSource>,
    pub role: RoleRequest,
    pub external_id: Option<String>,
    client: reqwest::Client,
}

impl AssumeRole {
    pub fn new(
        source: Arc<dyn CredentialSource>,
        role: RoleRequest,
        external_id: Option<String>,
    ) -> Self {
        AssumeRole {
            source,
            role,
            external_id,
            client: sts_client(),
        }
    }
}

#[async_trait]
impl Fetch for AssumeRole {
    async fn fetch(&self) -> Result<Fetched, StoreError> {
        let src = self.source.credentials().await?;
        let mut query = common("AssumeRole");
        query.extend([
            ("SignatureMethod".to_string(), "HMAC-SHA1".to_string()),
            ("SignatureVersion".into(), "1.0".into()),
            (
                "SignatureNonce".into(),
                hex::encode(rand::random::<[u8; 16]>()),
            ),
            ("AccessKeyId".into(), src.access_key_id.clone()),
        ]);
        if let Some(t) = &src.session_token {
            query.push(("SecurityToken".into(), t.clone()));
        }
        let mut body = role_form(&self.role);
        if let Some(x) = &self.external_id {
            body.push(("ExternalId".into(), x.clone()));
        }
        let all: Vec<(String, String)> = query.iter().chain(body.iter()).cloned().collect();
        query.push((
            "Signature".into(),
            rpc_sign::signature("POST", &all, &src.secret_access_key),
        ));
        sts_call(&self.client, &self.role, "AssumeRole", query, body).await
    }
}

// --- a URI and a command ------------------------------------------------------------

#[derive(Debug)]
pub struct Uri {
    pub url: String,
    client: reqwest::Client,
}

impl Uri {
    pub fn new(url: String) -> Self {
        Uri {
            url,
            client: sts_client(),
        }
    }
}

#[async_trait]
impl Fetch for Uri {
    async fn fetch(&self) -> Result<Fetched, StoreError> {
        let what = format!("the credentials URI {}", self.url);
        let resp = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| fail(format!("{what}: cannot reach it ({})", transport_cause(&e))))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(fail(format!("{what} answered HTTP {status}")));
        }
        let v = json(&body, &what)?;
        if let Some(code) = text(&v, &["Code"]) {
            if code != "Success" {
                return Err(fail(format!("{what} answered Code {code}")));
            }
        }
        temporary(parse_keys(&v, &what)?, &what)
    }
}

/// A command run with `sh -c`, whose standard output is the JSON of the
/// aliyun CLI's External mode or of ossutil's credential process.
#[derive(Debug)]
pub struct Process {
    pub command: String,
}

const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

#[async_trait]
impl Fetch for Process {
    async fn fetch(&self) -> Result<Fetched, StoreError> {
        let what = format!("the credentials command `{}`", self.command);
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(PROCESS_TIMEOUT, child)
            .await
            .map_err(|_| {
                fail(format!(
                    "{what} did not finish within {}s",
                    PROCESS_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| fail(format!("{what}: cannot run it: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim();
            return Err(fail(format!(
                "{what} failed ({}){}",
                out.status,
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {last}")
                }
            )));
        }
        let v = json(&String::from_utf8_lossy(&out.stdout), &what)?;
        let (c, expiry) = parse_keys(&v, &what)?;
        let expiry = match (&c.session_token, expiry) {
            (Some(_), None) => {
                Some(SystemTime::now() + PROCESS_TOKEN_LIFE + crate::config::refresh::EARLY)
            }
            (_, e) => e,
        };
        Ok((c, expiry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_of_keys() {
        let sdk = serde_json::json!({
            "Code": "Success", "AccessKeyId": "STS.a", "AccessKeySecret": "s",
            "SecurityToken": "t", "Expiration": "2030-10-20T04:27:09Z"
        });
        let (c, e) = parse_keys(&sdk, "x").unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token.as_deref()),
            ("STS.a", Some("t"))
        );
        assert_eq!(e, parse_expiration("2030-10-20T04:27:09Z"));
        assert!(e.is_some());
        let cli =
            serde_json::json!({"mode": "AK", "access_key_id": "LTAI", "access_key_secret": "s"});
        let (c, e) = parse_keys(&cli, "x").unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.session_token, e),
            ("LTAI", None, None)
        );
        let half =
            serde_json::json!({"mode": "StsToken", "access_key_id": "a", "access_key_secret": "s"});
        assert!(parse_keys(&half, "x")
            .unwrap_err()
            .to_string()
            .contains("sts_token"));
        let none = serde_json::json!({"AccessKeyId": "a"});
        assert!(parse_keys(&none, "cmd")
            .unwrap_err()
            .to_string()
            .contains("cmd answered without"));
        let bad_time = serde_json::json!({"AccessKeyId": "a", "AccessKeySecret": "s", "Expiration": "tomorrow"});
        assert!(parse_keys(&bad_time, "x").is_err());
    }

    #[tokio::test]
    async fn a_command_prints_keys_or_fails_with_its_last_line() {
        let ok = Process {
            command: r#"echo '{"AccessKeyId":"P1","AccessKeySecret":"s","SecurityToken":"t","Expiration":"2031-01-01T00:00:00Z"}'"#.into(),
        };
        let (c, e) = ok.fetch().await.unwrap();
        assert_eq!(c.access_key_id, "P1");
        assert!(e.is_some());
        let failing = Process {
            command: "echo noise >&2; echo 'role not allowed' >&2; exit 3".into(),
        };
        let msg = failing.fetch().await.unwrap_err().to_string();
        assert!(
            msg.contains("role not allowed") && msg.contains("exit status: 3"),
            "{msg}"
        );
        let junk = Process {
            command: "echo hello".into(),
        };
        assert!(junk
            .fetch()
            .await
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
    }
}
