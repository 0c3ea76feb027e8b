//! The smaller commands end to end: mb/rb, ls, rm, checkpoint and uploads
//! housekeeping, profiles from a config file.

use crate::harness::{aws, server, stderr, unique, write_file, Ferry};
use crate::listing_proxy::ListingProxy;

#[test]
fn make_list_remove_bucket() {
    let ferry = Ferry::new();
    let bucket = format!("mb-{:08x}", rand::random::<u32>());
    let url = format!("s3://{bucket}");
    ferry.ok(&["mb", &url]);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(&dir.path().join("f"), 10, 1);
    ferry.ok(&["cp", f.to_str().unwrap(), &format!("{url}/a/b/f")]);
    ferry.ok(&["cp", f.to_str().unwrap(), &format!("{url}/a/g")]);
    // One level, with the sub-prefix shown as a directory.
    let top = ferry.ok(&["ls", &format!("{url}/a/")]);
    assert!(top.contains("DIR") && top.contains("a/b/"), "{top}");
    assert!(top.contains("a/g"), "{top}");
    assert!(!top.contains("a/b/f"), "{top}");
    let all = ferry.ok(&["ls", "-r", "--json", &url]);
    assert_eq!(all.lines().count(), 2);
    // A non-empty bucket cannot be removed; emptied, it can.
    let out = ferry.run(&["rb", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("BucketNotEmpty"), "{}", stderr(&out));
    ferry.ok(&["rm", "-r", &url]);
    assert_eq!(ferry.ok(&["ls", "-r", "--json", &url]).lines().count(), 0);
    ferry.ok(&["rb", &url]);
    let out = ferry.run(&["ls", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("NoSuchBucket"), "{}", stderr(&out));
}

#[test]
fn rm_of_missing_object_says_so() {
    let ferry = Ferry::new();
    let out = ferry.run(&["rm", &server().url(&format!("{}/nothing", unique("rm")))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("NoSuchKey") || stderr(&out).contains("not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn checkpoint_and_uploads_housekeeping() {
    let ferry = Ferry::new();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    std::fs::create_dir_all(&ckpt).unwrap();
    std::fs::write(ckpt.join("0000.ucp"), b"not a checkpoint").unwrap();
    let listed = ferry.ok(&[
        "checkpoint",
        "ls",
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
    ]);
    assert!(listed.contains("damaged"), "{listed}");
    ferry.ok(&[
        "checkpoint",
        "clean",
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_dir(&ckpt).unwrap().count(), 0);

    // An upload left open on the server, found and aborted.
    let key = format!("{}/open", unique("uploads"));
    let store = server().store();
    let id = crate::harness::runtime()
        .block_on(store.create_multipart_upload(&server().bucket, &key, &Default::default()))
        .unwrap()
        .upload_id;
    let prefix_url = server().url(key.split('/').next().unwrap());
    let ls = ferry.ok(&["uploads", "ls", &prefix_url]);
    assert!(ls.contains(&id), "{ls}");
    // Too young for --older-than 1d: left alone.
    ferry.ok(&["uploads", "abort", &prefix_url, "--older-than", "1d"]);
    assert!(ferry.ok(&["uploads", "ls", &prefix_url]).contains(&id));
    ferry.ok(&["uploads", "abort", &prefix_url]);
    assert!(!ferry.ok(&["uploads", "ls", &prefix_url]).contains(&id));
}

#[test]
fn profile_from_config_file() {
    let ferry = Ferry::at("http://127.0.0.1:9");
    let cfg = ferry.home.path().join("ferry.toml");
    std::fs::write(
        &cfg,
        format!(
            "[profiles.garage]\nscheme = \"s3\"\nendpoint = \"{}\"\nregion = \"{}\"\naccess_key_id_env = \"MY_ID\"\nsecret_access_key_env = \"MY_SECRET\"\n",
            server().endpoint,
            server().region
        ),
    )
    .unwrap();
    let mut cmd = ferry.command(&[
        "--config",
        cfg.to_str().unwrap(),
        "--profile",
        "garage",
        "ls",
        &server().url(""),
    ]);
    // The environment would win over the file, so it is cleared: the
    // endpoint and the credentials' variable names come from the profile.
    cmd.env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("MY_ID", &server().access_key)
        .env("MY_SECRET", &server().secret_key);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn keys_with_control_characters_are_escaped_for_people_and_raw_for_json() {
    let ferry = Ferry::new();
    let dir = tempfile::tempdir().unwrap();
    let name = "red\x1b[31m\rfake\u{202e}txt";
    std::fs::write(dir.path().join(name), b"x").unwrap();
    let prefix = unique("ctl");
    let url = server().url(&format!("{prefix}/"));
    ferry.ok(&["cp", "-r", dir.path().to_str().unwrap(), &url]);
    let human = ferry.ok(&["ls", "-r", &url]);
    assert!(
        !human.contains('\x1b') && !human.contains('\r'),
        "{human:?}"
    );
    assert!(human.contains(r"red\x1b[31m\rfake\u{202e}txt"), "{human:?}");
    let json = ferry.ok(&["ls", "-r", "--json", &url]);
    let v: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(v["key"], format!("{prefix}/{name}"));
    // Dry-run plans name it the same way.
    let other = tempfile::tempdir().unwrap();
    let plan = ferry.ok(&[
        "cp",
        "-r",
        "--dry-run",
        &url,
        other.path().to_str().unwrap(),
    ]);
    assert!(
        plan.contains(r"red\x1b[31m\rfake") && !plan.contains('\x1b'),
        "{plan:?}"
    );
}

#[test]
fn config_show_names_where_the_credentials_come_from_and_never_the_secret() {
    let ferry = Ferry::new();
    let show = ferry.ok(&["config", "show"]);
    let s3 = show
        .lines()
        .find(|l| l.contains("s3://"))
        .unwrap_or_default();
    assert!(s3.contains("environment (AWS_ACCESS_KEY_ID)"), "{show}");
    assert!(
        s3.contains(&format!("{}****", &server().access_key[..4])),
        "{show}"
    );
    assert!(!show.contains(&server().secret_key), "{show}");
    let oss = show
        .lines()
        .find(|l| l.contains("oss://"))
        .unwrap_or_default();
    assert!(
        oss.contains("not found") && oss.contains("OSS_ACCESS_KEY_ID"),
        "{show}"
    );
    // From a shared credentials file, with AWS_PROFILE.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        "[work]\naws_access_key_id = AKIDFROMFILE\naws_secret_access_key = hidden-secret\n",
    )
    .unwrap();
    let out = ferry
        .command(&["config", "show"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_SHARED_CREDENTIALS_FILE", &file)
        .env("AWS_PROFILE", "work")
        .output()
        .unwrap();
    let show = String::from_utf8_lossy(&out.stdout);
    assert!(
        show.contains(&format!("{} [work], key AKID****", file.display())),
        "{show}"
    );
    assert!(!show.contains("hidden-secret"), "{show}");
}

#[test]
fn completions_and_manual_pages_come_from_the_binary_even_with_a_broken_config() {
    let mut ferry = Ferry::new();
    let broken = ferry.home.path().join("broken.toml");
    std::fs::write(&broken, "[profiles.x\n").unwrap();
    ferry
        .extra_env
        .push(("FERRY_CONFIG".into(), broken.display().to_string()));
    // The config file is broken for every other command.
    assert_eq!(ferry.run(&["jobs"]).status.code(), Some(2));
    for (shell, marker) in [
        ("bash", "complete -F _ferry"),
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
    ] {
        let out = ferry.ok(&["completions", shell]);
        assert!(
            out.contains(marker),
            "{shell}: {}",
            &out[..out.len().min(200)]
        );
        // Subcommands and their flags are in it.
        assert!(
            out.contains("checkpoint") && out.contains("storage-class"),
            "{shell}"
        );
    }
    let page = ferry.ok(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH ferry 1"),
        "{}",
        &page[..200]
    );
    assert!(page.contains(".TH ferry 1") && page.contains("SUBCOMMANDS"));
    let dir = ferry.home.path().join("man1");
    ferry.ok(&["man", "--dir", dir.to_str().unwrap()]);
    let cp = std::fs::read_to_string(dir.join("ferry-cp.1")).unwrap();
    assert!(
        cp.contains("checkpoint\\-dir") || cp.contains("checkpoint-dir"),
        "ferry-cp.1 lists cp's flags"
    );
    assert!(dir.join("ferry-checkpoint-ls.1").exists());
    let out = ferry.run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn rm_r_deletes_page_by_page_as_the_listing_goes() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..2500 {
        write_file(&dir.path().join(format!("d{}/f{i:04}", i % 5)), 3, i);
    }
    let prefix = unique("rm-pages");
    let ferry = Ferry::new();
    ferry.ok(&[
        "cp",
        "-r",
        "-q",
        dir.path().to_str().unwrap(),
        &server().url(&format!("{prefix}/")),
    ]);
    let proxy = ListingProxy::start(&server().endpoint, |b| b.to_string());
    let out = Ferry::at(&proxy.endpoint).run(&["rm", "-r", &server().url(&format!("{prefix}/"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("deleted 2500 objects"),
        "{}",
        stderr(&out)
    );
    // Three pages, three batches, interleaved: each page is deleted before
    // the next is asked for.
    let order: Vec<&str> = proxy
        .counters
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter_map(
            |(m, t)| match (m.as_str(), t.contains("list-type=2"), t.contains("delete")) {
                ("GET", true, _) => Some("list"),
                ("POST", _, true) => Some("delete"),
                _ => None,
            },
        )
        .collect();
    assert_eq!(
        order,
        ["list", "delete", "list", "delete", "list", "delete"]
    );
    let left = aws(&[
        "s3api",
        "list-objects-v2",
        "--bucket",
        &server().bucket,
        "--prefix",
        &prefix,
    ]);
    assert!(left.status.success(), "{}", stderr(&left));
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains("\"Key\""),
        "objects left"
    );
}

/// `du` sums what the AWS CLI put under a prefix, in total and per
/// directory, from the listing alone (one LIST, no HEAD).
#[test]
fn du_sums_a_prefix_from_one_listing() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("du");
    let mut total = 0u64;
    for (rel, len) in [("a/x", 100usize), ("a/y", 50), ("b/c/z", 7), ("top", 1000)] {
        let p = write_file(&dir.path().join(rel), len, len as u64);
        total += len as u64;
        let out = aws(&[
            "s3",
            "cp",
            "--only-show-errors",
            p.to_str().unwrap(),
            &format!("s3://{}/{prefix}/{rel}", server().bucket),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let proxy = crate::proxy::Proxy::start(&server().endpoint, 0);
    let ferry = Ferry::at(&proxy.endpoint);
    let url = server().url(&format!("{prefix}/"));
    let out = ferry.ok(&["du", "--bytes", &url]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words[..2], [total.to_string(), "4".to_string()], "{out}");
    assert_eq!(proxy.count("GET", "list-type=2"), 1);
    assert_eq!(proxy.count("HEAD", ""), 0);

    let out = ferry.ok(&["du", "--json", "-d", "1", &url]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |p: &str| {
        rows.iter()
            .find(|r| r["prefix"] == format!("{prefix}/{p}") && r.get("total").is_none())
            .unwrap_or_else(|| panic!("{p}: {out}"))
            .clone()
    };
    assert_eq!(
        (row("a/")["bytes"].as_u64(), row("a/")["objects"].as_u64()),
        (Some(150), Some(2))
    );
    assert_eq!(row("b/")["bytes"].as_u64(), Some(7));
    assert_eq!(
        row("")["bytes"].as_u64(),
        Some(1000),
        "the prefix's own objects"
    );
    let last = rows.last().unwrap();
    assert_eq!(last["total"], true);
    assert_eq!(last["bytes"].as_u64(), Some(total));
    assert_eq!(last["objects"].as_u64(), Some(4));
}
