//! A three-node Garage cluster (replication factor 3) that loses a node:
//! ferry given the three S3 endpoints spreads its requests over them and
//! rides out a node killed during a tree upload, during a download and
//! between a killed upload and its resume (sending only the missing
//! parts); with the one endpoint it was given dead, it stops with one line
//! within a bounded time; a part cut inside its body at a kill and then
//! refused at completion (`InvalidPart`) is sent again. Each node sits behind a counting proxy, and
//! every object is checked with the AWS CLI through a live node.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::harness::{read_env_file, sha256_file, stderr, unique, write_file, Ferry};
use crate::listing_proxy::{Answered, ListingProxy};
use crate::proxy::Proxy;

struct Cluster {
    dir: tempfile::TempDir,
    endpoints: Vec<String>,
    bucket: String,
    key_id: String,
    secret: String,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
/// The tests kill and restart nodes: one at a time.
static NODES: Mutex<()> = Mutex::new(());

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/garage.sh");
        let out = Command::new("bash")
            .arg(&script)
            .args([
                "cluster",
                dir.path().to_str().unwrap(),
                "--nodes",
                "3",
                "--watch-pid",
            ])
            .arg(std::process::id().to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = read_env_file(&dir.path().join("env"));
        Cluster {
            endpoints: env["FERRY_CLUSTER_ENDPOINTS"]
                .replace("\\,", ",")
                .split(',')
                .map(str::to_string)
                .collect(),
            bucket: env["FERRY_CLUSTER_BUCKET"].clone(),
            key_id: env["FERRY_CLUSTER_ACCESS_KEY_ID"].clone(),
            secret: env["FERRY_CLUSTER_SECRET_ACCESS_KEY"].clone(),
            dir,
        }
    })
}

impl Cluster {
    fn pid(&self, node: usize) -> i32 {
        let p = self.dir.path().join(format!("node{node}/garage.pid"));
        std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
    }

    /// SIGKILL: the node stops answering mid-request, as a crash does.
    fn kill(&self, node: usize) {
        let pid = self.pid(node);
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        {
            assert!(Instant::now() < deadline, "node {node} did not die");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn restart(&self, node: usize) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/garage.sh");
        let out = Command::new("bash")
            .arg(&script)
            .args([
                "node-start",
                self.dir.path().to_str().unwrap(),
                &node.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The AWS CLI's SHA-256 of an object, read through `endpoint`.
    fn aws_sha256(&self, endpoint: &str, key: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("o");
        let out = self.aws(
            endpoint,
            &[
                "s3api",
                "get-object",
                "--bucket",
                &self.bucket,
                "--key",
                key,
                to.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "aws get-object {key}: {}",
            stderr(&out)
        );
        sha256_file(&to)
    }

    fn aws(&self, endpoint: &str, args: &[&str]) -> Output {
        Command::new("aws")
            .args(args)
            .args(["--endpoint-url", endpoint])
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_DEFAULT_REGION", "garage")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .unwrap()
    }

    /// A ferry with the cluster's keys, and a counting proxy per node.
    fn ferry(&self) -> (Ferry, Vec<ListingProxy>) {
        let proxies: Vec<ListingProxy> = self
            .endpoints
            .iter()
            .map(|e| ListingProxy::start(e, |b| b.to_string()))
            .collect();
        let mut f = Ferry::at(&proxies[0].endpoint);
        f.extra_env.extend([
            ("AWS_ACCESS_KEY_ID".to_string(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret.clone()),
            ("AWS_REGION".into(), "garage".into()),
            // Only the endpoints each test gives (an empty value is unset).
            ("AWS_ENDPOINT_URL".into(), String::new()),
        ]);
        (f, proxies)
    }
}

fn endpoint_args(proxies: &[ListingProxy]) -> Vec<String> {
    proxies
        .iter()
        .flat_map(|p| ["--endpoint".to_string(), p.endpoint.clone()])
        .collect()
}

/// `cp -r` over every node, in parts, slow enough for a kill to land
/// mid-way.
fn copy_tree(ferry: &Ferry, proxies: &[ListingProxy], from: &str, to: &str) -> std::process::Child {
    let mut args: Vec<String> = endpoint_args(proxies);
    args.extend(
        [
            "cp",
            "-r",
            "-j",
            "4",
            "--part-size",
            "5M",
            "--bigfile-threshold",
            "5M",
            "--bwlimit",
            "20M",
            from,
            to,
        ]
        .map(String::from),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ferry
        .command(&refs)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn requests(p: &ListingProxy) -> usize {
    p.counters.requests.lock().unwrap().len()
}

fn tree(root: &Path, files: usize, seed: u64) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (0..files)
        .map(|i| {
            write_file(
                &root.join(format!("d{}/f{i}.bin", i % 4)),
                150_000 + i * 7,
                seed + i as u64,
            )
        })
        .collect();
    out.push(write_file(&root.join("big.bin"), 24 << 20, seed + 1000));
    out
}

#[test]
fn a_node_killed_during_a_tree_upload_and_a_download() {
    let c = cluster();
    let _one = NODES.lock().unwrap_or_else(|e| e.into_inner());
    let (ferry, proxies) = c.ferry();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let files = tree(&src, 40, 90);
    let prefix = unique("cluster");
    let child = copy_tree(
        &ferry,
        &proxies,
        &src.display().to_string(),
        &c.url(&prefix),
    );
    // Node 2 dies once the upload is well under way.
    crate::harness::wait_for(60, "the upload to start on node 2", || {
        requests(&proxies[1]) >= 5
    });
    c.kill(2);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The requests were spread, and the live nodes took over.
    assert!(
        proxies.iter().all(|p| requests(p) > 0),
        "{:?}",
        proxies.iter().map(requests).collect::<Vec<_>>()
    );
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().display().to_string();
        assert_eq!(
            c.aws_sha256(&c.endpoints[0], &format!("{prefix}/{rel}")),
            sha256_file(f),
            "{rel}"
        );
    }

    // A download with node 3 killed part way, once node 2 is back.
    let back = dir.path().join("back");
    let before = requests(&proxies[2]);
    let child = copy_tree(
        &ferry,
        &proxies,
        &c.url(&prefix),
        &back.display().to_string(),
    );
    c.restart(2);
    crate::harness::wait_for(60, "the download to reach node 3", || {
        requests(&proxies[2]) >= before + 5
    });
    c.kill(3);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        assert_eq!(
            sha256_file(&back.join(rel)),
            sha256_file(f),
            "{}",
            rel.display()
        );
    }
    c.restart(3);
}

#[test]
fn a_resume_through_the_other_nodes_sends_only_the_missing_parts() {
    let c = cluster();
    let _one = NODES.lock().unwrap_or_else(|e| e.into_inner());
    let (ferry, proxies) = c.ferry();
    // The nodes as a profile: the checkpoint belongs to the profile, not
    // to the node that happened to take the first request.
    let eps: Vec<&str> = proxies.iter().map(|p| p.endpoint.as_str()).collect();
    let cfg = garage3_profile(&ferry, &eps);
    let dir = tempfile::tempdir().unwrap();
    let big = write_file(&dir.path().join("big.bin"), 40 << 20, 95);
    let key = format!("{}/big.bin", unique("cluster-resume"));
    let ckpt = dir.path().join("ckpt");
    let args = resumable_upload(&cfg, &ckpt, &big, &c.url(&key), &["--bwlimit", "8M"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let parts_sent =
        |ps: &[ListingProxy]| -> usize { ps.iter().map(|p| p.count("PUT", "partNumber=")).sum() };
    let mut child = ferry
        .command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    crate::harness::wait_for(60, "a few parts", || parts_sent(&proxies) >= 3);
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let first = parts_sent(&proxies);
    // The node that took the first request is gone before the resume.
    c.kill(1);
    for p in &proxies {
        p.reset();
    }
    let out = ferry.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let resent = parts_sent(&proxies);
    assert!(
        first + resent <= 8 + 2,
        "{first} parts before, {resent} after: the rest only (8 parts, 2 in flight at the kill)"
    );
    assert!(resent < 8, "resumed, not restarted: {resent} parts");
    assert_eq!(c.aws_sha256(&c.endpoints[1], &key), sha256_file(&big));
    c.restart(1);
}

#[test]
fn the_one_endpoint_given_dead_is_one_line_within_a_bounded_time() {
    let c = cluster();
    let _one = NODES.lock().unwrap_or_else(|e| e.into_inner());
    let (ferry, proxies) = c.ferry();
    c.kill(3);
    let dir = tempfile::tempdir().unwrap();
    let src = write_file(&dir.path().join("f.bin"), 12 << 20, 97);
    let started = Instant::now();
    let out = ferry.run(&[
        "--endpoint",
        &proxies[2].endpoint,
        "cp",
        "--part-size",
        "5M",
        "--bigfile-threshold",
        "5M",
        src.to_str().unwrap(),
        &c.url(&unique("dead")),
    ]);
    let took = started.elapsed();
    c.restart(3);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("ferry: error"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains(&proxies[2].endpoint) && lines[0].contains("after 6 attempts"),
        "{err}"
    );
    // Never a hang: six attempts with backoff, not minutes.
    assert!(took < Duration::from_secs(60), "{took:?}");
}

/// Every request of the resume, in one order across the three nodes.
static ORDER: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Records each request, and answers the first CompleteMultipartUpload as
/// Garage answered by hand when a part in flight at a kill had been
/// listed before its data was whole.
fn refuse_first_completion(method: &str, target: &str, _: &[(String, String)]) -> Answered {
    ORDER
        .lock()
        .unwrap()
        .push((method.to_string(), target.to_string()));
    let completes = method == "POST" && target.contains("uploadId=");
    if completes && !REFUSED.swap(true, Ordering::SeqCst) {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidPart</Code><Message>Parts given to CompleteMultipartUpload do not match uploaded parts</Message></Error>";
        return Some((
            400,
            vec![("Content-Type".into(), "application/xml".into())],
            body.into(),
        ));
    }
    None
}

/// `cp` of `src` to `url` through the `garage3` profile in `cfg`, as a
/// resumable multipart upload: 5 MiB parts, two in flight.
fn resumable_upload(cfg: &Path, ckpt: &Path, src: &Path, url: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--config",
        cfg.to_str().unwrap(),
        "--profile",
        "garage3",
        "cp",
        "--part-size",
        "5M",
        "--bigfile-threshold",
        "5M",
        "--parallel",
        "2",
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend([src.to_str().unwrap().to_string(), url.to_string()]);
    args
}

fn garage3_profile(ferry: &Ferry, endpoints: &[&str]) -> PathBuf {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    let cfg = ferry.home.path().join("ferry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[profiles.garage3]\nendpoints = [{}]\nregion = \"garage\"\n",
            list.join(", ")
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn a_part_cut_at_the_kill_and_refused_at_completion_is_sent_again() {
    let c = cluster();
    let _one = NODES.lock().unwrap_or_else(|e| e.into_inner());
    let (ferry, _) = c.ferry();
    let dir = tempfile::tempdir().unwrap();
    let big = write_file(&dir.path().join("big.bin"), 40 << 20, 96);
    let key = format!("{}/big.bin", unique("cluster-invalid-part"));
    let ckpt = dir.path().join("ckpt");
    let args = |cfg: &Path| resumable_upload(cfg, &ckpt, &big, &c.url(&key), &[]);

    // The first run dies inside part 3's body: its start has reached a
    // node, the rest never will.
    let cutters: Vec<Proxy> = c.endpoints.iter().map(|e| Proxy::start(e, 0)).collect();
    for p in &cutters {
        p.cut_body_of("partNumber=3&");
    }
    let eps: Vec<&str> = cutters.iter().map(|p| p.endpoint.as_str()).collect();
    let cfg = garage3_profile(&ferry, &eps);
    let argv = args(&cfg);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut child = ferry
        .command(&argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    crate::harness::wait_for(60, "part 3 cut", || cutters.iter().any(Proxy::was_cut));
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    drop(cutters);
    std::thread::sleep(Duration::from_millis(500));

    // The resume, told InvalidPart at its first completion.
    let proxies: Vec<ListingProxy> = c
        .endpoints
        .iter()
        .map(|e| ListingProxy::start_answering(e, refuse_first_completion))
        .collect();
    let eps: Vec<&str> = proxies.iter().map(|p| p.endpoint.as_str()).collect();
    let cfg = garage3_profile(&ferry, &eps);
    let argv = args(&cfg);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = ferry.run(&argv);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refused to complete"),
        "{}",
        stderr(&out)
    );
    let order = ORDER.lock().unwrap().clone();
    let completes: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, (m, t))| m == "POST" && t.contains("uploadId="))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(completes.len(), 2, "refused, then completed: {order:?}");
    let parts = |from: usize, to: usize| -> Vec<&str> {
        order[from..to]
            .iter()
            .filter(|(m, t)| m == "PUT" && t.contains("partNumber="))
            .map(|(_, t)| t.as_str())
            .collect()
    };
    let before = parts(0, completes[0]);
    let again = parts(completes[0], completes[1]);
    assert!(
        before.len() < 8,
        "resumed, not restarted: {} parts",
        before.len()
    );
    assert!(
        before.iter().any(|t| t.contains("partNumber=3&")),
        "the cut part is sent in full: {before:?}"
    );
    // After the refusal: exactly the parts the resume took over from the
    // killed run, so every part of the object was sent whole by this run.
    assert_eq!(
        before.len() + again.len(),
        8,
        "before {before:?}, again {again:?}"
    );
    assert_eq!(c.aws_sha256(&c.endpoints[1], &key), sha256_file(&big));
}
