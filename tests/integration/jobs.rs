//! Config-file jobs and watch mode against the real server. Watch tests
//! wait on conditions with deadlines; no fixed sleep is an assertion.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::harness::{
    aws_listed_parts, server, sha256, sha256_file, stderr, unique, wait_for, write_file, Ferry,
};
use crate::proxy::Proxy;

fn config(ferry: &Ferry, body: &str) -> PathBuf {
    let p = ferry.home.path().join("ferry.toml");
    std::fs::write(&p, body).unwrap();
    p
}

fn job_toml(name: &str, src: &Path, dst: &str, extra: &str) -> String {
    format!(
        "[jobs.{name}]\nsource = \"{}\"\ndestination = \"{dst}\"\n{extra}\n",
        src.display()
    )
}

/// Object content by key under `prefix` (relative keys), via ferry's own
/// client (the data path under test is the watcher, not the client).
fn remote_tree(prefix: &str) -> Vec<(String, String)> {
    let s = server();
    let store = s.store();
    crate::harness::runtime().block_on(async {
        let objs = ferry::store::list_all_objects(store.as_ref(), &s.bucket, &format!("{prefix}/"))
            .await
            .unwrap();
        let mut out = Vec::new();
        for o in objs {
            // The watcher may delete an object between listing and reading.
            let Ok(got) = store
                .get_object(&s.bucket, &o.key, &ferry::store::GetRequest::whole())
                .await
            else {
                continue;
            };
            let Ok(b) = got.bytes().await else { continue };
            out.push((o.key[prefix.len() + 1..].to_string(), sha256(&b)));
        }
        out
    })
}

fn local_tree(root: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                sha256_file(e.path()),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn run_job_then_noop_and_flags_override_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for i in 0..30 {
        write_file(&src.join(format!("d{}/f{i}", i % 3)), 100 + i, i as u64);
    }
    let prefix = unique("job");
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let cfg = config(
        &ferry,
        &format!(
            "[defaults]\njobs = 2\n{}",
            job_toml("backup", &src, &server().url(&prefix), "update = true")
        ),
    );
    let c = cfg.to_str().unwrap();
    ferry.ok(&["--config", c, "run", "backup"]);
    assert_eq!(crate::proxy::writes(&proxy).len(), 30);
    assert_eq!(remote_tree(&prefix), local_tree(&src));
    proxy.reset(0);
    ferry.ok(&["--config", c, "run", "--all"]);
    assert_eq!(
        crate::proxy::writes(&proxy).len(),
        0,
        "second run transfers nothing"
    );
    let jobs = ferry.ok(&["--config", c, "jobs"]);
    assert!(
        jobs.contains("backup:") && jobs.contains("success") && jobs.contains("0 sent"),
        "{jobs}"
    );
    // Flags override the file: -j 5 shows as coming from the command line;
    // --dry-run changes nothing.
    let show = ferry.ok(&["--config", c, "config", "show", "backup"]);
    assert!(
        show.lines()
            .any(|l| l.contains("jobs") && l.contains("2") && l.contains("[defaults]")),
        "{show}"
    );
    std::fs::write(src.join("d0/new"), b"new").unwrap();
    proxy.reset(0);
    let out = ferry.ok(&["--config", c, "run", "backup", "--dry-run", "-j", "5"]);
    assert!(out.contains("would upload d0/new (new)"), "{out}");
    assert_eq!(crate::proxy::writes(&proxy).len(), 0);
    // An unknown job is a usage error naming the defined ones.
    let bad = ferry.run(&["--config", c, "run", "nope"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("defined jobs: backup"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn invalid_config_is_refused_with_location() {
    let ferry = Ferry::new();
    let cfg = config(
        &ferry,
        "[jobs.x]\nsource = \"/tmp\"\ndestination = \"/tmp/inside\"\n",
    );
    let out = ferry.run(&["--config", cfg.to_str().unwrap(), "jobs"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("ferry.toml:3:15"), "{err}");
    let cfg = config(
        &ferry,
        "[profiles.p]\nsecret_access_key = \"s\"\naccess_key_id = \"a\"\n",
    );
    std::fs::set_permissions(&cfg, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = ferry.run(&["--config", cfg.to_str().unwrap(), "jobs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("\"s\""));
}

struct Watcher {
    child: Child,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_watch(ferry: &Ferry, cfg: &Path, job: &str) -> Watcher {
    let log = std::fs::File::create(ferry.home.path().join(format!("watch-{job}.log"))).unwrap();
    let child = ferry
        .command(&["--debug", "--config", cfg.to_str().unwrap(), "watch", job])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Watcher { child }
}

fn converge(src: &Path, prefix: &str, what: &str) {
    wait_for(60, what, || remote_tree(prefix) == local_tree(src));
}

#[test]
fn watch_follows_every_kind_of_change() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_file(&src.join("start.txt"), 10, 1);
    let prefix = unique("watch");
    let ferry = Ferry::new();
    let cfg = config(
        &ferry,
        &job_toml(
            "w",
            &src,
            &server().url(&prefix),
            "delete = true\ndebounce = \"300ms\"\nexclude = [\"*.swp\"]",
        ),
    );
    let _w = start_watch(&ferry, &cfg, "w");
    converge(&src, &prefix, "initial sync");

    write_file(&src.join("a/new.txt"), 1000, 2);
    converge(&src, &prefix, "create");
    std::fs::write(src.join("a/new.txt"), b"modified").unwrap();
    converge(&src, &prefix, "modify");
    std::fs::rename(src.join("a/new.txt"), src.join("a/renamed.txt")).unwrap();
    converge(&src, &prefix, "rename of a file");
    write_file(&src.join("dir1/x/y.txt"), 50, 3);
    converge(&src, &prefix, "nested create");
    std::fs::rename(src.join("dir1"), src.join("dir2")).unwrap();
    converge(&src, &prefix, "rename of a directory");
    std::fs::remove_file(src.join("start.txt")).unwrap();
    converge(&src, &prefix, "delete");
    // Editor-style save: write a swap file, then rename it over the target.
    write_file(&src.join("doc.txt"), 100, 4);
    converge(&src, &prefix, "doc");
    std::fs::write(src.join(".doc.txt.swp"), b"the new version of the document").unwrap();
    std::fs::rename(src.join(".doc.txt.swp"), src.join("doc.txt")).unwrap();
    converge(&src, &prefix, "atomic save");

    // A file appended to for several seconds is sent complete.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(src.join("growing.log")).unwrap();
        for i in 0..30 {
            writeln!(f, "line {i} {}", "x".repeat(1000)).unwrap();
            f.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    converge(&src, &prefix, "appended file");

    // A burst of 5,000 new files.
    for i in 0..5000u64 {
        write_file(&src.join(format!("burst/b{}/f{i}", i % 50)), 64, i);
    }
    wait_for(180, "burst of 5000", || {
        remote_tree(&prefix).len() == local_tree(&src).len()
    });
    converge(&src, &prefix, "burst contents");
}

#[test]
fn watch_without_delete_keeps_remote_copies() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_file(&src.join("keep.txt"), 10, 1);
    let prefix = unique("watch-nodel");
    let ferry = Ferry::new();
    let cfg = config(
        &ferry,
        &job_toml("w", &src, &server().url(&prefix), "debounce = \"200ms\""),
    );
    let _w = start_watch(&ferry, &cfg, "w");
    converge(&src, &prefix, "initial sync");
    std::fs::remove_file(src.join("keep.txt")).unwrap();
    write_file(&src.join("marker.txt"), 10, 2);
    wait_for(60, "marker", || {
        remote_tree(&prefix).iter().any(|(k, _)| k == "marker.txt")
    });
    assert!(
        remote_tree(&prefix).iter().any(|(k, _)| k == "keep.txt"),
        "deletion did not propagate"
    );
}

#[test]
fn watch_catches_up_after_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_file(&src.join("a.txt"), 10, 1);
    let prefix = unique("watch-outage");
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let cfg = config(
        &ferry,
        &job_toml(
            "w",
            &src,
            &server().url(&prefix),
            "debounce = \"200ms\"\ndelete = true",
        ),
    );
    let _w = start_watch(&ferry, &cfg, "w");
    converge(&src, &prefix, "initial sync");
    proxy.set_down(true);
    write_file(&src.join("during/outage1.txt"), 100, 2);
    write_file(&src.join("outage2.txt"), 100, 3);
    std::fs::remove_file(src.join("a.txt")).unwrap();
    // Let the watcher try (and fail) while the server is away.
    let mut waited = 0;
    // More refusals than one request's retries: the watcher's own
    // backoff-and-rescan path is exercised, not just the HTTP retries.
    while proxy.refused() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
        if waited > 1200 {
            let log =
                std::fs::read_to_string(ferry.home.path().join("watch-w.log")).unwrap_or_default();
            panic!("no attempts during the outage; watcher log:\n{log}");
        }
    }
    proxy.set_down(false);
    converge(&src, &prefix, "catch-up after the outage");
}

#[test]
fn sigterm_during_large_upload_resumes_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let prefix = unique("watch-term");
    let proxy = Proxy::start(&server().endpoint, 20 * 1024 * 1024);
    let ferry = Ferry::at(&proxy.endpoint);
    let ckpt = dir.path().join("ckpt");
    let cfg = config(
        &ferry,
        &job_toml(
            "w",
            &src,
            &server().url(&prefix),
            &format!("debounce = \"200ms\"\nbigfile_threshold = \"10M\"\npart_size = \"5M\"\ncheckpoint_dir = \"{}\"", ckpt.display()),
        ),
    );
    let big = write_file(&src.join("big.bin"), 100 * 1024 * 1024, 7);
    let mut w = start_watch(&ferry, &cfg, "w");
    let key = format!("{prefix}/big.bin");
    // The proxy sees each part's request as it starts; with 4 parts in
    // flight, the 10th start means at least 6 parts are done. Polling the
    // proxy (not the AWS CLI, which takes a second a call) cannot miss
    // the few seconds the upload is open.
    wait_for(120, "parts on the server", || {
        proxy.count("PUT", "partNumber=") >= 10
    });
    let pid = w.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = w.child.wait().unwrap();
    assert!(matches!(status.code(), Some(0) | Some(130)), "{status:?}");
    let listed = aws_listed_parts(&key).expect("upload left open for resume");
    assert!(
        listed.len() >= 3,
        "{} parts stored before the stop",
        listed.len()
    );
    proxy.reset(0);
    let _w2 = start_watch(&ferry, &cfg, "w");
    wait_for(120, "resumed upload", || remote_tree(&prefix).len() == 1);
    let sent = proxy.body_bytes("PUT", "partNumber=");
    let remaining = (20 - listed.len() as u64) * 5 * 1024 * 1024;
    assert!(
        sent <= remaining + 4 * 5 * 1024 * 1024,
        "restart sent {sent}, {remaining} were missing"
    );
    assert_eq!(remote_tree(&prefix)[0].1, sha256_file(&big));
}

#[test]
fn a_jobs_object_options_reach_every_upload_and_bad_ones_name_the_job() {
    let ferry = Ferry::new();
    let src = ferry.home.path().join("site");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("index.html"), b"<p>hi</p>").unwrap();
    let prefix = unique("job-object");
    let cfg = config(
        &ferry,
        &format!(
            "[defaults.object]\ncache_control = \"max-age=300\"\n{}[jobs.site.object]\nmetadata = {{ owner = \"web\" }}\n",
            job_toml("site", &src, &server().url(&prefix), "")
        ),
    );
    let c = cfg.to_str().unwrap();
    ferry.ok(&["--config", c, "run", "site"]);
    let head = crate::harness::aws_head(&format!("{prefix}/index.html"));
    assert_eq!(head["CacheControl"].as_str(), Some("max-age=300"), "{head}");
    assert_eq!(head["ContentType"].as_str(), Some("text/html"), "{head}");
    assert_eq!(head["Metadata"]["owner"].as_str(), Some("web"), "{head}");
    let show = ferry.ok(&["--config", c, "config", "show", "site"]);
    assert!(
        show.lines()
            .any(|l| l.contains("object.cache_control") && l.contains("[defaults]")),
        "{show}"
    );
    // A storage class the store does not have: a usage error naming the job.
    let cfg = config(
        &ferry,
        &format!(
            "{}[jobs.cold.object]\nstorage_class = \"FROZEN\"\n",
            job_toml("cold", &src, &server().url(&prefix), "")
        ),
    );
    let out = ferry.run(&["--config", cfg.to_str().unwrap(), "run", "cold"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("job 'cold'") && stderr(&out).contains("FROZEN"),
        "{}",
        stderr(&out)
    );
}

/// A tree of 60 directories watched under a limit of 20 inotify watches
/// (a user namespace's own `user.max_inotify_watches`, so nothing else on
/// the machine is affected): one line names the sysctl and the number
/// needed, and a new file in every directory, watched or not, arrives by
/// the watch or by the full passes that stand in for it.
#[test]
fn watch_past_the_inotify_limit_says_so_and_falls_back_to_full_passes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for i in 0..60 {
        write_file(&src.join(format!("d{i:02}/start.txt")), 10, i);
    }
    let prefix = unique("watch-limit");
    let ferry = Ferry::new();
    let cfg = config(
        &ferry,
        &job_toml(
            "w",
            &src,
            &server().url(&prefix),
            "debounce = \"200ms\"\nrescan_interval = \"3s\"",
        ),
    );
    let inner = ferry.command(&["--debug", "--config", cfg.to_str().unwrap(), "watch", "w"]);
    let mut c = Command::new("unshare");
    c.env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let log_path = ferry.home.path().join("watch-limit.log");
    c.args([
        "-Ur",
        "sh",
        "-c",
        "echo 20 > /proc/sys/user/max_inotify_watches && exec \"$0\" \"$@\"",
    ])
    .arg(inner.get_program())
    .args(inner.get_args())
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log_path).unwrap());
    let _w = Watcher {
        child: c.spawn().expect("unshare (util-linux)"),
    };
    converge(&src, &prefix, "initial sync");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for(30, "the limit line", || {
        log().contains("inotify watch limit")
    });
    let line = log()
        .lines()
        .find(|l| l.contains("inotify watch limit"))
        .unwrap()
        .to_string();
    assert!(line.contains("user.max_inotify_watches = 20"), "{line}");
    assert!(
        line.contains("sysctl user.max_inotify_watches=81"),
        "{line}"
    );
    assert!(line.contains("61 directories"), "{line}");
    for i in 0..60 {
        write_file(&src.join(format!("d{i:02}/later.txt")), 100, 100 + i);
    }
    converge(
        &src,
        &prefix,
        "changes in watched and unwatched directories",
    );
    assert_eq!(log().matches("inotify watch limit").count(), 1, "said once");
}
