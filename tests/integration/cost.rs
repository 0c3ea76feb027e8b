//! `--dry-run`'s cost preview against Garage: the requests and bytes it
//! says the run would send are the requests and bytes the real run then
//! sends, counted by kind at a proxy in front of the server.

use crate::harness::{server, unique, write_file, Ferry};
use crate::proxy::{Proxy, Request};

/// The proxy's requests by the preview's kinds.
fn by_kind(reqs: &[Request]) -> serde_json::Value {
    let n = |f: &dyn Fn(&Request) -> bool| reqs.iter().filter(|r| f(r)).count() as u64;
    let part = |r: &Request| r.target.contains("partNumber=");
    serde_json::json!({
        "list": n(&|r| r.method == "GET" && r.target.contains("list-type")),
        "head": n(&|r| r.method == "HEAD"),
        "put": n(&|r| r.method == "PUT" && !part(r)),
        "parts": n(&|r| r.method == "PUT" && part(r)),
        "multipart": n(&|r| r.method == "POST" && (r.target.contains("uploads") || r.target.contains("uploadId"))),
        "copy": 0,
        "get": n(&|r| r.method == "GET" && !r.target.contains("list-type")),
        "delete": n(&|r| r.method == "POST" && r.target.contains("delete")),
        "bytes_up": reqs.iter().filter(|r| r.method == "PUT").map(|r| r.body_len).sum::<u64>(),
    })
}

fn cost_of(out: &str) -> serde_json::Value {
    let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let mut c = summary["cost"].clone();
    assert!(c.is_object(), "no cost in {out}");
    c.as_object_mut().unwrap().remove("bytes_down");
    c
}

#[test]
fn the_dry_run_cost_preview_is_what_the_real_run_sends() {
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (i, rel) in ["keep", "changed", "gone", "d/e/deep"].iter().enumerate() {
        write_file(&root.join(rel), 1000 + i, i as u64);
    }
    let prefix = unique("cost");
    let url = server().url(&format!("{prefix}/"));
    let sized = ["--bigfile-threshold", "5M", "--part-size", "5M"];
    let tree = root.to_str().unwrap();
    ferry.ok(&[&["cp", "-r", "-u"][..], &sized, &[tree, &url]].concat());

    // A new small file, a new 12 MiB one (three parts), one resized (its
    // time well ahead: no HEAD needed), one removed.
    write_file(&root.join("new"), 7000, 9);
    write_file(&root.join("big"), 12 << 20, 10);
    let changed = write_file(&root.join("changed"), 4000, 11);
    let ahead = filetime::FileTime::from_unix_time(crate::harness::now_secs() + 86_400, 0);
    filetime::set_file_mtime(&changed, ahead).unwrap();
    std::fs::remove_file(root.join("gone")).unwrap();

    let args = [
        &["cp", "-r", "-u", "--delete", "--json"][..],
        &sized,
        &[tree, &url],
    ]
    .concat();
    proxy.reset(0);
    let preview = ferry.ok(&[&args[..], &["--dry-run"]].concat());
    let dry = proxy.requests();
    assert!(
        dry.iter().all(|r| r.method == "GET" || r.method == "HEAD"),
        "a dry run changes nothing: {dry:?}"
    );
    let said = cost_of(&preview);
    assert_eq!(said["parts"], 3, "{said}");

    proxy.reset(0);
    ferry.ok(&args);
    let sent = by_kind(&proxy.requests());
    assert_eq!(said, sent, "preview vs the real run at the proxy");
    assert_eq!(said["bytes_up"], 7000 + (12 << 20) + 4000);
}
