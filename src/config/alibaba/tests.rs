//! The chain's choices and the files' formats, without a network.

use std::collections::HashMap;
use std::path::Path;

use super::spec::{RoleRequest, Spec, StsEndpoint};
use super::{find, Found};
use crate::store::credentials::Credentials;

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A home directory holding the given files, and an environment around it.
struct Home {
    dir: tempfile::TempDir,
    vars: HashMap<&'static str, &'static str>,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = HashMap::new();
        vars.insert("HOME", leak(dir.path().display().to_string()));
        Home { dir, vars }
    }

    fn file(&self, rel: &str, text: &str) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    fn var(&mut self, k: &'static str, v: &str) -> &mut Self {
        self.vars.insert(k, leak(v.to_string()));
        self
    }

    fn find(&self) -> Found {
        find(&self.vars).unwrap().expect("a source")
    }

    fn err(&self) -> String {
        find(&self.vars).unwrap_err().to_string()
    }

    fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }
}

fn keys(id: &str, token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: id.into(),
        secret_access_key: "secret".into(),
        session_token: token.map(Into::into),
    }
}

const CLI: &str = ".aliyun/config.json";

fn cli_file(current: &str, profiles: &str) -> String {
    format!(r#"{{"current": "{current}", "profiles": [{profiles}], "meta_path": ""}}"#)
}

#[test]
fn nothing_configured_leaves_the_instance_role_as_the_last_resort() {
    let mut h = Home::new();
    let f = h.find();
    assert_eq!(f.spec, Spec::EcsRamRole { role_name: None });
    assert!(f.probed);
    h.var("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true");
    assert!(find(&h.vars).unwrap().is_none());
    h.var("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false");
    h.var("ALIBABA_CLOUD_ECS_METADATA", "app-role");
    let f = h.find();
    assert_eq!(
        f.spec,
        Spec::EcsRamRole {
            role_name: Some("app-role".into())
        }
    );
    assert!(!f.probed);
    // A URI, named outright, comes before probing the instance.
    h.var("ALIBABA_CLOUD_CREDENTIALS_URI", "http://127.0.0.1:9/creds");
    assert_eq!(h.find().spec, Spec::Uri("http://127.0.0.1:9/creds".into()));
}

#[test]
fn the_environment_comes_first_and_halves_are_refused() {
    let mut h = Home::new();
    h.file(
        CLI,
        &cli_file(
            "default",
            r#"{"name":"default","mode":"AK","access_key_id":"CLI","access_key_secret":"s"}"#,
        ),
    );
    assert!(h
        .find()
        .origin
        .contains("config.json profile default (mode AK"));
    h.var("ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/pod")
        .var(
            "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
            "acs:ram::1:oidc-provider/ack",
        )
        .var("ALIBABA_CLOUD_OIDC_TOKEN_FILE", "/var/run/secrets/token")
        .var("ALIBABA_CLOUD_ROLE_SESSION_NAME", "pod-1")
        .var("ALIBABA_CLOUD_STS_REGION", "cn-beijing")
        .var("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED", "true");
    let f = h.find();
    let Spec::Oidc {
        role,
        provider_arn,
        token_file,
    } = &f.spec
    else {
        panic!("{f:?}")
    };
    assert_eq!(role.role_arn, "acs:ram::1:role/pod");
    assert_eq!(role.session_name, "pod-1");
    assert_eq!(role.sts.url(), "https://sts-vpc.cn-beijing.aliyuncs.com");
    assert_eq!(provider_arn, "acs:ram::1:oidc-provider/ack");
    assert_eq!(token_file, Path::new("/var/run/secrets/token"));
    assert!(f.origin.contains("RRSA"));
    h.var("ALIBABA_CLOUD_ACCESS_KEY_ID", "ENV")
        .var("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "secret");
    assert_eq!(h.find().spec, Spec::Static(keys("ENV", None)));
    h.var("ALIBABA_CLOUD_SECURITY_TOKEN", "tok");
    assert_eq!(h.find().spec, Spec::Static(keys("ENV", Some("tok"))));
    h.vars.remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET");
    assert!(
        h.err()
            .contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set"),
        "{}",
        h.err()
    );
}

#[test]
fn the_aliyun_cli_profiles() {
    let profiles = r#"
        {"name":"ak","mode":"AK","access_key_id":"AK1","access_key_secret":"secret","region_id":"cn-hangzhou"},
        {"name":"sts","mode":"StsToken","access_key_id":"STS.1","access_key_secret":"secret","sts_token":"tok"},
        {"name":"role","mode":"RamRoleArn","access_key_id":"AK2","access_key_secret":"secret",
         "ram_role_arn":"acs:ram::1:role/r","ram_session_name":"s1","expired_seconds":1800,"external_id":"x-1",
         "sts_endpoint":"http://127.0.0.1:9"},
        {"name":"ecs","mode":"EcsRamRole","ram_role_name":"box"},
        {"name":"chain","mode":"ChainableRamRoleArn","source_profile":"ecs","ram_role_arn":"acs:ram::1:role/up"},
        {"name":"oidc","mode":"OIDC","oidc_provider_arn":"p","oidc_token_file":"/t","ram_role_arn":"acs:ram::1:role/o"},
        {"name":"ext","mode":"External","process_command":"my-vault get oss"},
        {"name":"uri","mode":"CredentialsURI","credentials_uri":"http://127.0.0.1:9/c"},
        {"name":"inferred","access_key_id":"AK3","access_key_secret":"secret","sts_token":"t3"},
        {"name":"sso","mode":"CloudSSO","cloud_sso_sign_in_url":"https://sso"},
        {"name":"short","mode":"RamRoleArn","access_key_id":"a","access_key_secret":"s","ram_role_arn":"r","expired_seconds":60},
        {"name":"broken","mode":"RamRoleArn","access_key_id":"a","access_key_secret":"s"}"#;
    let mut h = Home::new();
    h.file(CLI, &cli_file("ak", profiles));
    assert_eq!(h.find().spec, Spec::Static(keys("AK1", None)));
    let pick = |h: &mut Home, name: &str| {
        h.var("ALIBABA_CLOUD_PROFILE", name);
        h.find().spec
    };
    assert_eq!(
        pick(&mut h, "sts"),
        Spec::Static(keys("STS.1", Some("tok")))
    );
    assert_eq!(
        pick(&mut h, "role"),
        Spec::RamRoleArn {
            source: Box::new(Spec::Static(keys("AK2", None))),
            role: RoleRequest {
                role_arn: "acs:ram::1:role/r".into(),
                session_name: "s1".into(),
                duration_secs: 1800,
                policy: None,
                sts: StsEndpoint {
                    url: Some("http://127.0.0.1:9".into()),
                    region: None,
                    vpc: false
                },
            },
            external_id: Some("x-1".into()),
        }
    );
    assert_eq!(
        pick(&mut h, "ecs"),
        Spec::EcsRamRole {
            role_name: Some("box".into())
        }
    );
    let Spec::RamRoleArn { source, role, .. } = pick(&mut h, "chain") else {
        panic!()
    };
    assert_eq!(
        *source,
        Spec::EcsRamRole {
            role_name: Some("box".into())
        }
    );
    assert_eq!(role.duration_secs, 3600);
    assert!(matches!(pick(&mut h, "oidc"), Spec::Oidc { .. }));
    assert_eq!(
        pick(&mut h, "ext"),
        Spec::Process {
            command: "my-vault get oss".into()
        }
    );
    assert_eq!(
        pick(&mut h, "uri"),
        Spec::Uri("http://127.0.0.1:9/c".into())
    );
    assert_eq!(
        pick(&mut h, "inferred"),
        Spec::Static(keys("AK3", Some("t3")))
    );
    for (name, says) in [
        ("sso", "mode CloudSSO needs a browser"),
        ("short", "at least 900 seconds"),
        ("broken", "needs ram_role_arn"),
    ] {
        h.var("ALIBABA_CLOUD_PROFILE", name);
        let e = h.err();
        assert!(
            e.contains(says) && e.contains(&format!("profile {name}")),
            "{name}: {e}"
        );
        assert!(e.contains(&h.path(CLI)), "{e}");
    }
    // A profile the file lacks: the chain goes on (here to the instance).
    h.var("ALIBABA_CLOUD_PROFILE", "nowhere");
    assert!(h.find().probed);
    h.file(CLI, "{ not json");
    assert!(h.err().contains("not the aliyun CLI's JSON"), "{}", h.err());
}

#[test]
fn the_sdk_credentials_file() {
    let mut h = Home::new();
    h.file(
        ".alibabacloud/credentials",
        "[default]\ntype = access_key\naccess_key_id = INI1\naccess_key_secret = secret\n\
         [role]\ntype = ram_role_arn\naccess_key_id = INI2\naccess_key_secret = secret\nrole_arn = acs:ram::1:role/r\nrole_session_name = s\n\
         [box]\ntype = ecs_ram_role\nrole_name = box\n\
         [pod]\ntype = oidc_role_arn\nrole_arn = r\noidc_provider_arn = p\noidc_token_file_path = /t\n\
         [odd]\ntype = bearer\n",
    );
    assert_eq!(h.find().spec, Spec::Static(keys("INI1", None)));
    h.var("ALIBABA_CLOUD_PROFILE", "role");
    assert!(matches!(h.find().spec, Spec::RamRoleArn { .. }));
    h.var("ALIBABA_CLOUD_PROFILE", "box");
    assert_eq!(
        h.find().spec,
        Spec::EcsRamRole {
            role_name: Some("box".into())
        }
    );
    h.var("ALIBABA_CLOUD_PROFILE", "pod");
    assert!(matches!(h.find().spec, Spec::Oidc { .. }));
    h.var("ALIBABA_CLOUD_PROFILE", "odd");
    assert!(h.err().contains("type bearer is not one of"), "{}", h.err());
    // The CLI's file, when it has the profile, comes first.
    h.var("ALIBABA_CLOUD_PROFILE", "role");
    h.file(
        CLI,
        &cli_file(
            "x",
            r#"{"name":"role","mode":"AK","access_key_id":"CLI","access_key_secret":"s"}"#,
        ),
    );
    assert!(matches!(h.find().spec, Spec::Static(ref c) if c.access_key_id == "CLI"));
}

#[test]
fn ossutil_files_both_generations() {
    let mut h = Home::new();
    // 1.x: [Credentials] with its own spellings.
    h.file(".ossutilconfig", "[Credentials]\nlanguage=EN\nendpoint=oss-cn-hangzhou.aliyuncs.com\naccessKeyID=U1\naccessKeySecret=secret\n");
    let f = h.find();
    assert_eq!(f.spec, Spec::Static(keys("U1", None)));
    assert!(f.origin.contains("ossutil"), "{}", f.origin);
    // 2.0: [default] and [profile NAME], any case of key.
    h.file(
        ".ossutilconfig",
        "[default]\naccess-key-id = U2\nACCESS_KEY_SECRET = secret\nsts-token = t2\nregion = cn-hangzhou\n\
         [profile roles]\nmode = RamRoleArn\naccessKeyId = U3\naccessKeySecret = secret\nramRoleArn = acs:ram::1:role/r\n\
         [profile proc]\nmode = Process\ncredential-process = vault read oss\n\
         [profile box]\nmode = EcsRamRole\necsRoleName = box\n\
         [profile anon]\nmode = Anonymous\n",
    );
    assert_eq!(h.find().spec, Spec::Static(keys("U2", Some("t2"))));
    h.var("OSSUTIL_PROFILE", "roles");
    let Spec::RamRoleArn { source, role, .. } = h.find().spec else {
        panic!()
    };
    assert_eq!(*source, Spec::Static(keys("U3", None)));
    assert_eq!(role.role_arn, "acs:ram::1:role/r");
    h.var("OSSUTIL_PROFILE", "proc");
    assert_eq!(
        h.find().spec,
        Spec::Process {
            command: "vault read oss".into()
        }
    );
    h.var("OSSUTIL_PROFILE", "box");
    assert_eq!(
        h.find().spec,
        Spec::EcsRamRole {
            role_name: Some("box".into())
        }
    );
    h.var("OSSUTIL_PROFILE", "anon");
    assert!(h.err().contains("--no-sign-request"), "{}", h.err());
    // The SDKs' file comes before ossutil's.
    h.var("OSSUTIL_PROFILE", "roles");
    h.file(
        ".alibabacloud/credentials",
        "[default]\ntype = access_key\naccess_key_id = INI\naccess_key_secret = s\n",
    );
    assert!(matches!(h.find().spec, Spec::Static(ref c) if c.access_key_id == "INI"));
}

#[test]
fn config_show_lines_never_hold_a_secret() {
    let mut h = Home::new();
    h.file(CLI, &cli_file("r", r#"{"name":"r","mode":"RamRoleArn","access_key_id":"AKX","access_key_secret":"TOPSECRET","sts_token":"TOPTOKEN","ram_role_arn":"acs:ram::1:role/r"}"#));
    let f = h.find();
    assert!(
        f.origin.contains("AssumeRole acs:ram::1:role/r"),
        "{}",
        f.origin
    );
    assert!(
        !f.origin.contains("TOPSECRET") && !f.origin.contains("TOPTOKEN"),
        "{}",
        f.origin
    );
    h.var("ALIBABA_CLOUD_PROFILE", "r");
    assert!(!format!("{:?}", h.find().spec).contains("TOPSECRET"));
}
