//! Standard input and output: `cp - URL`, `cp URL -`, `cat`.

use std::io::{Read, Write};
use std::process::Stdio;

use crate::harness::{aws_sha256, pattern, server, sha256, stderr, unique, Ferry};
use crate::proxy::Proxy;

/// Waits for the child, reading its peak RSS (VmHWM, KiB) as it runs.
/// `ru_maxrss` would not do: it counts the pages of this test process the
/// child had between fork and exec. VmHWM belongs to the exec'd image and
/// only grows, so the last reading before exit is the peak up to then.
fn wait_rss(child: &mut std::process::Child) -> (Option<i32>, u64) {
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return (s.code(), peak);
        }
        if let Ok(text) = std::fs::read_to_string(&status) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// 96 MiB through standard input under a 16 MiB memory budget: a
/// multipart upload of 5 MiB parts whose content the AWS CLI reads back
/// exactly, from a process that never held the stream whole.
#[test]
fn standard_input_larger_than_the_memory_budget_streams_into_parts() {
    let key = format!("{}/stdin.bin", unique("streams"));
    let data = pattern(96 << 20, 41);
    let proxy = Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let mut child = ferry
        .command(&[
            "cp",
            "--memory-budget",
            "16M",
            "--part-size",
            "5M",
            "--parallel",
            "2",
            "-",
            &server().url(&key),
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = {
        let data = data.clone();
        std::thread::spawn(move || {
            // Small writes, as a pipe from another program delivers them.
            for chunk in data.chunks(64 << 10) {
                stdin.write_all(chunk).unwrap();
            }
        })
    };
    let mut child_err = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut err = String::new();
        child_err.read_to_string(&mut err).unwrap();
        err
    });
    let (code, rss_kib) = wait_rss(&mut child);
    let err = err.join().unwrap();
    feed.join().unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("20 parts"), "{err}");
    assert_eq!(proxy.count("PUT", "partNumber="), 20);
    assert_eq!(proxy.count("POST", "uploads"), 1);
    assert_eq!(aws_sha256(&key), sha256(&data));
    // 96 MiB went through; the budget, two parts in flight and one being
    // read bound what was held.
    assert!(
        rss_kib < 64 * 1024,
        "peak RSS {rss_kib} KiB for a 96 MiB stream"
    );

    // A short stream is one PUT, empty included.
    for (len, name) in [(3usize, "short"), (0, "empty")] {
        let k = format!("{key}.{name}");
        let mut child = ferry
            .command(&["cp", "-", &server().url(&k)])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&data[..len]).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(aws_sha256(&k), sha256(&data[..len]));
    }
}

/// `cp URL -` writes the object in order (several ranged GETs at once)
/// and checks it on the way; `cat` writes several, reports a missing one
/// and carries on; a reader that goes away is not an error.
#[test]
fn objects_stream_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("streams-out");
    let big = pattern(23 << 20, 5);
    let small = b"hello\n".to_vec();
    std::fs::write(dir.path().join("big"), &big).unwrap();
    std::fs::write(dir.path().join("small"), &small).unwrap();
    let ferry = Ferry::new();
    for name in ["big", "small"] {
        ferry.ok(&[
            "cp",
            "--part-size",
            "5M",
            dir.path().join(name).to_str().unwrap(),
            &server().url(&format!("{prefix}/{name}")),
        ]);
    }
    let url = |name: &str| server().url(&format!("{prefix}/{name}"));
    let proxy = Proxy::start(&server().endpoint, 0);
    let via = Ferry::at(&proxy.endpoint);
    let out = via.run(&[
        "cp",
        "--bigfile-threshold",
        "5M",
        "--part-size",
        "5M",
        &url("big"),
        "-",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sha256(&out.stdout), sha256(&big));
    assert_eq!(
        proxy.count("GET", &format!("{prefix}/big")),
        5,
        "23 MiB in 5 MiB ranges"
    );

    let out = via.run(&["cat", &url("small"), &url("missing"), &url("small")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(out.stdout, [small.clone(), small.clone()].concat());
    let err = stderr(&out);
    assert!(err.contains("missing") && err.lines().count() == 1, "{err}");

    // `ferry cat big | head -c 10`: the pipe closes early; exit 0.
    let mut child = via
        .command(&["cat", &url("big")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // stdout dropped here: the pipe is closed.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(&head, &big[..10]);

    for bad in [&["cp", "-r", "-", &url("x")][..], &["cp", "-", "-"][..]] {
        let out = via.run(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
}
