//! OSS credentials as Alibaba's tools find them, at the wire: the ECS
//! metadata service (IMDSv2 and v1), RRSA's AssumeRoleWithOIDC, a signed
//! AssumeRole from an aliyun CLI profile, an External command and a
//! credentials URI, each seen signing real OSS requests (a listing played
//! by the fake), refreshed mid-run, and each failure a single line.

use std::process::Output;

use crate::alibaba_fakes::{ecs_metadata, oss_listing, oss_signer, sts, Fake};
use crate::harness::{stderr, Ferry};

/// `ferry ls oss://ferry-oss/` against `listing`, with `env` and HOME's
/// files, and no credentials anywhere else (the metadata service is the
/// one given, or a closed port).
fn ls(ferry: &Ferry, listing: &Fake, env: &[(&str, &str)]) -> Output {
    let mut c = ferry.command(&[
        "ls",
        "-r",
        "oss://ferry-oss/",
        "--endpoint",
        &listing.endpoint,
        "--region",
        "cn-hangzhou",
    ]);
    c.env("FERRY_ECS_METADATA_ENDPOINT", "http://127.0.0.1:9");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn config_show(ferry: &Ferry, env: &[(&str, &str)]) -> String {
    let mut c = ferry.command(&["config", "show"]);
    c.env("FERRY_ECS_METADATA_ENDPOINT", "http://127.0.0.1:9");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.trim_start().starts_with("oss://"))
        .unwrap_or("")
        .to_string()
}

/// Key ids and tokens each listing request was signed with.
fn signers(listing: &Fake) -> Vec<(String, Option<String>)> {
    listing.requests().iter().map(oss_signer).collect()
}

fn distinct(v: &[(String, Option<String>)]) -> usize {
    let mut ids: Vec<&String> = v.iter().map(|(k, _)| k).collect();
    ids.sort();
    ids.dedup();
    ids.len()
}

#[test]
fn an_ecs_instance_role_signs_and_is_fetched_again_before_it_expires() {
    // Each answer expires in four minutes, inside ferry's five-minute
    // margin: every request of the run fetches anew.
    let imds = ecs_metadata("oss-writer", true, 4);
    let listing = oss_listing(3);
    let ferry = Ferry::new();
    let out = ls(
        &ferry,
        &listing,
        &[("FERRY_ECS_METADATA_ENDPOINT", &imds.endpoint)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("key-0") && stdout.contains("key-2"),
        "{stdout}"
    );
    let sent = signers(&listing);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(
        sent.iter().all(|(k, t)| k.starts_with("STS.ecs-")
            && t.as_deref().is_some_and(|t| t.starts_with("ecs-token-"))),
        "{sent:?}"
    );
    assert_eq!(distinct(&sent), 3, "a new key for each page: {sent:?}");
    // IMDSv2: a token first, and on every metadata read.
    let asked = imds.requests();
    assert_eq!(asked[0].method, "PUT", "{asked:?}");
    assert!(asked
        .iter()
        .filter(|r| r.method == "GET")
        .all(|r| r.header("X-aliyun-ecs-metadata-token").is_some()));
    assert!(
        asked
            .iter()
            .any(|r| r.path() == "/latest/meta-data/ram/security-credentials/"),
        "the role was listed"
    );
    // config show names the source and the masked key id.
    let line = config_show(&ferry, &[("FERRY_ECS_METADATA_ENDPOINT", &imds.endpoint)]);
    assert!(
        line.contains("ECS metadata service") && line.contains("STS."),
        "{line}"
    );
    assert!(
        !line.contains("ecs-secret") && !line.contains("ecs-token"),
        "{line}"
    );
}

#[test]
fn an_imdsv1_service_is_used_unless_v1_is_disabled() {
    let imds = ecs_metadata("r", false, 60);
    let listing = oss_listing(1);
    let ferry = Ferry::new();
    let env = [
        ("FERRY_ECS_METADATA_ENDPOINT", imds.endpoint.as_str()),
        ("ALIBABA_CLOUD_ECS_METADATA", "r"),
    ];
    let out = ls(&ferry, &listing, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(signers(&listing).iter().all(|(k, _)| k == "STS.ecs-1"));
    let before = listing.requests().len();
    let mut strict = env.to_vec();
    strict.push(("ALIBABA_CLOUD_IMDSV1_DISABLED", "true"));
    let out = ls(&ferry, &listing, &strict);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("IMDSv1 is disabled") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert_eq!(
        listing.requests().len(),
        before,
        "nothing was sent to the bucket"
    );
}

#[test]
fn rrsa_exchanges_the_pods_token_at_sts() {
    let sts = sts("eyJ.pod-token.sig", "unused", "unused", 60);
    let listing = oss_listing(1);
    let ferry = Ferry::new();
    let token = ferry.home.path().join("token");
    std::fs::write(&token, "eyJ.pod-token.sig").unwrap();
    let token = token.to_str().unwrap();
    let env = [
        (
            "ALIBABA_CLOUD_ROLE_ARN",
            "acs:ram::1234567890123456:role/pod",
        ),
        (
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "acs:ram::1234567890123456:oidc-provider/ack-rrsa",
        ),
        ("ALIBABA_CLOUD_OIDC_TOKEN_FILE", token),
        ("ALIBABA_CLOUD_STS_ENDPOINT", sts.endpoint.as_str()),
    ];
    let out = ls(&ferry, &listing, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        signers(&listing),
        vec![("STS.role-1".to_string(), Some("role-token-1".to_string()))]
    );
    let call = &sts.requests()[0];
    assert_eq!(
        call.param("RoleArn").as_deref(),
        Some("acs:ram::1234567890123456:role/pod")
    );
    assert!(
        call.param("Timestamp").is_some()
            && call.param("DurationSeconds").as_deref() == Some("3600")
    );
    assert!(config_show(&ferry, &env).contains("RRSA"));
    // A rotated-away token: STS's code and message, one line, exit 2.
    std::fs::write(token, "eyJ.stale.sig").unwrap();
    let out = ls(&ferry, &listing, &env);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("AuthenticationFail.OIDCToken.Expired") && err.contains("request REQ-1"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn an_aliyun_cli_role_profile_is_assumed_with_a_signed_request() {
    let sts = sts("unused", "LTAIsource", "source-secret", 60);
    let listing = oss_listing(1);
    let ferry = Ferry::new();
    let write = |secret: &str| {
        std::fs::create_dir_all(ferry.home.path().join(".aliyun")).unwrap();
        std::fs::write(
            ferry.home.path().join(".aliyun/config.json"),
            format!(
                r#"{{"current":"deploy","profiles":[{{"name":"deploy","mode":"RamRoleArn","access_key_id":"LTAIsource",
"access_key_secret":"{secret}","ram_role_arn":"acs:ram::1:role/deploy","ram_session_name":"ci","external_id":"x-42",
"sts_endpoint":"{}","region_id":"cn-hangzhou"}}]}}"#,
                sts.endpoint
            ),
        )
        .unwrap();
    };
    write("source-secret");
    let out = ls(&ferry, &listing, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(signers(&listing)[0].0, "STS.role-1");
    let call = &sts.requests()[0];
    assert_eq!(call.param("ExternalId").as_deref(), Some("x-42"));
    assert_eq!(call.param("RoleSessionName").as_deref(), Some("ci"));
    let line = config_show(&ferry, &[]);
    assert!(
        line.contains("profile deploy (mode RamRoleArn: AssumeRole acs:ram::1:role/deploy"),
        "{line}"
    );
    // The wrong secret: STS refuses the signature, in one line.
    write("wrong-secret");
    let out = ls(&ferry, &listing, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("SignatureDoesNotMatch") && err.trim().lines().count() == 1,
        "{err}"
    );
    assert!(!err.contains("wrong-secret"), "{err}");
}

#[test]
fn an_external_command_and_a_credentials_uri() {
    let listing = oss_listing(1);
    let ferry = Ferry::new();
    std::fs::create_dir_all(ferry.home.path().join(".aliyun")).unwrap();
    std::fs::write(
        ferry.home.path().join(".aliyun/config.json"),
        r#"{"current":"vault","profiles":[{"name":"vault","mode":"External",
"process_command":"echo '{\"mode\":\"StsToken\",\"access_key_id\":\"STS.ext\",\"access_key_secret\":\"s\",\"sts_token\":\"ext-token\"}'"}]}"#,
    )
    .unwrap();
    let out = ls(&ferry, &listing, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        signers(&listing)[0],
        ("STS.ext".to_string(), Some("ext-token".to_string()))
    );
    // A URI answering as the SDKs expect, when no profile applies.
    let uri = crate::alibaba_fakes::Fake::start(std::sync::Arc::new(
        |_r: &crate::alibaba_fakes::Req| {
            (
                200,
                vec![],
                format!(
                    r#"{{"Code":"Success","AccessKeyId":"STS.uri","AccessKeySecret":"s","SecurityToken":"uri-token","Expiration":"{}"}}"#,
                    crate::alibaba_fakes::expiry_in(60)
                ),
            )
        },
    ));
    let url = format!("{}/credentials", uri.endpoint);
    let out = ls(
        &ferry,
        &listing,
        &[
            ("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true"),
            ("ALIBABA_CLOUD_CREDENTIALS_URI", &url),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(signers(&listing).last().unwrap().0, "STS.uri");
}

#[test]
fn ferrys_own_and_the_sdks_variables_come_before_any_file() {
    let listing = oss_listing(1);
    let ferry = Ferry::new();
    std::fs::write(
        ferry.home.path().join(".ossutilconfig"),
        "[default]\naccessKeyID = LTAIossutil\naccessKeySecret = s\n",
    )
    .unwrap();
    assert!(ls(&ferry, &listing, &[]).status.success());
    let env = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIsdk"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s"),
    ];
    assert!(ls(&ferry, &listing, &env).status.success());
    let mut both = env.to_vec();
    both.extend([
        ("OSS_ACCESS_KEY_ID", "LTAIoss"),
        ("OSS_ACCESS_KEY_SECRET", "s"),
    ]);
    assert!(ls(&ferry, &listing, &both).status.success());
    let ids: Vec<String> = signers(&listing).into_iter().map(|(k, _)| k).collect();
    assert_eq!(ids, ["LTAIossutil", "LTAIsdk", "LTAIoss"]);
    // Nothing anywhere: one line that says where credentials go.
    let empty = Ferry::new();
    let out = ls(&empty, &listing, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("no credentials for oss://") && err.contains("ALIBABA_CLOUD_ACCESS_KEY_ID"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
