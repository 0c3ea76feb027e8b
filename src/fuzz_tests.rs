#![cfg(test)]

//! Fuzz targets for every parser of outside input: checkpoint files, the
//! config file, the store's XML bodies, `mtime` metadata, sizes and
//! durations, URLs and endpoints, listing keys, the known-mtimes cache, the
//! mount journal and credentials files.
//!
//! Each target feeds arbitrary input *and* mutations of valid input (bit
//! flips, cuts, splices, format tokens), so the deep paths run and not only
//! the first syntax check, and asserts that nothing panics plus a property
//! that is cheap to state (round trips, one-line errors, no secret in a
//! message). The normal suite runs a few hundred cases per target;
//! `FERRY_FUZZ_CASES=N cargo test --release --lib fuzz_ -- --nocapture`
//! runs N cases each and prints how long each took.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Debug;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestCaseResult, TestRunner};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::checksum::normalize_etag;
use crate::config::credentials::{read_ini_section, resolve_credentials};
use crate::config::file::{JobTable, Profile};
use crate::config::{resolve_endpoint, ConfigFile, EndpointFlags};
use crate::location::{validate_bucket, Location, MAX_KEY_LEN};
use crate::mtime::{format_mtime, parse_mtime, to_filetime, Nanos};
use crate::store::dialect::Dialect;
use crate::store::xml::{self, escape, ListEncoding};
use crate::store::PartInfo;
use crate::sync::known::{Known, KnownMtimes};
use crate::sync::plan::MaxDelete;
use crate::transfer::checkpoint::{
    decode, encode, CheckpointKind, CheckpointProblem, DonePart, DownloadCheckpoint,
    UploadCheckpoint,
};
use crate::transfer::parts::{layout, MAX_PARTS};
use crate::transfer::resume::{plan_download_resume, plan_upload_resume, RecordedPart};
use crate::units::{human, parse_duration, parse_size};

// ---------------------------------------------------------------------------
// Running a target

/// Runs `test` on `default_cases` inputs from `strategy`, or on
/// `FERRY_FUZZ_CASES` inputs when that is set. A panic inside `test` is a
/// failure like a false assertion: proptest catches it and shrinks the input.
fn fuzz<S>(name: &str, default_cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let cases = std::env::var("FERRY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let mut runner = TestRunner::new(Config {
        cases,
        // A finding becomes a named unit test beside the parser, not a file.
        failure_persistence: None,
        ..Config::default()
    });
    let started = Instant::now();
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{name}: {e}");
    }
    eprintln!("{name}: {cases} cases in {:.1?}", started.elapsed());
}

fn one_line(what: &str, msg: &str) -> TestCaseResult {
    prop_assert!(
        !msg.contains('\n') && !msg.contains('\r'),
        "{what}: a multi-line message: {msg:?}"
    );
    Ok(())
}

fn has_line_break(s: &str) -> bool {
    s.contains(['\n', '\r'])
}

/// Replaces a file's content. Unlinking first keeps each case cheap: ext4
/// flushes a file that is truncated to zero and rewritten.
fn rewrite(path: &Path, bytes: impl AsRef<[u8]>) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).unwrap();
}

// ---------------------------------------------------------------------------
// Mutations of valid input

/// One edit of a byte string. Positions are `Index`es so one edit list
/// applies to any seed.
#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    Delete(Index, u8),
    Insert(Index, Vec<u8>),
    /// A token of the format (`</Key>`, `"""`, `\u0000`, `-1`...).
    Token(Index, Index),
    /// Copies a slice elsewhere: repeated elements, nested tables.
    Splice(Index, Index, u8),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        1 => (any::<Index>(), 1u8..).prop_map(|(i, b)| Edit::Flip(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (any::<Index>(), 1u8..32).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => (any::<Index>(), vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Edit::Insert(i, b)),
        4 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Edit::Token(i, t)),
        1 => (any::<Index>(), any::<Index>(), 1u8..64).prop_map(|(a, b, n)| Edit::Splice(a, b, n)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    vec(edit(), 1..6)
}

fn mutate(seed: &[u8], edits: &[Edit], tokens: &[&str]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for e in edits {
        let len = b.len();
        // Insertion points run 0..=len; byte positions 0..len.
        let gap = |i: &Index| i.index(len + 1);
        match e {
            Edit::Flip(i, x) if len > 0 => b[i.index(len)] ^= x,
            Edit::Set(i, x) if len > 0 => b[i.index(len)] = *x,
            Edit::Delete(i, n) => {
                let at = gap(i);
                b.drain(at..(at + *n as usize).min(len));
            }
            Edit::Insert(i, bytes) => {
                let at = gap(i);
                b.splice(at..at, bytes.iter().copied());
            }
            Edit::Token(i, t) => {
                let at = gap(i);
                let token = tokens[t.index(tokens.len())].as_bytes();
                b.splice(at..at, token.iter().copied());
            }
            Edit::Splice(from, to, n) if len > 0 => {
                let start = from.index(len);
                let piece = b[start..(start + *n as usize).min(len)].to_vec();
                let at = gap(to);
                b.splice(at..at, piece);
            }
            Edit::Truncate(i) => b.truncate(gap(i)),
            _ => {}
        }
    }
    b
}

fn mutate_text(seed: &str, edits: &[Edit], tokens: &[&str]) -> String {
    String::from_utf8_lossy(&mutate(seed.as_bytes(), edits, tokens)).into_owned()
}

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\n",
    "null",
    "true",
    "0",
    "-1",
    "1e400",
    "-0.5",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "\"size\":",
    "\"part_size\":0",
    "\"part_size\":1",
    "\"parts\":[{\"number\":0,\"etag\":\"\",\"md5\":\"\"}]",
    "{\"number\":4294967295,\"etag\":\"x\",\"md5\":\"zz\",\"crc64\":18446744073709551615}",
    "\"done\":[{\"number\":4294967295}]",
    "\"mtime\":\"-0.5\"",
    "\"mtime\":\"99999999999999999999\"",
    "\"entries\":{\"k\":{\"etag\":\"e\",\"size\":1,\"lm\":null,\"mtime\":\"1.5\"}}",
    "\"state\":\"ready\"",
    "\"state\":\"writing\"",
    "\"key\":\"m/../x\"",
    "\"key\":\"m/a/\"",
    "\"format\":\"ferry-checkpoint\"",
    "\"version\":2",
];

// ---------------------------------------------------------------------------
// Checkpoint files

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9/._ -]{0,24}",
        1 => any::<String>(),
    ]
}

fn path() -> impl Strategy<Value = PathBuf> {
    prop_oneof![
        3 => text().prop_map(PathBuf::from),
        // A directory named in another encoding than UTF-8.
        1 => vec(any::<u8>(), 1..24).prop_map(|b| PathBuf::from(OsString::from_vec(b))),
    ]
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..100_000,
        any::<u64>(),
        Just(0),
        Just(u64::MAX),
        (0u32..64).prop_map(|s| 1u64 << s),
    ]
}

fn recorded_part() -> impl Strategy<Value = RecordedPart> {
    (
        prop_oneof![0u32..20, any::<u32>()],
        text(),
        text(),
        any::<Option<u64>>(),
    )
        .prop_map(|(number, etag, md5, crc64)| RecordedPart {
            number,
            etag,
            md5,
            crc64,
            checksum: None,
        })
}

fn upload_checkpoint() -> impl Strategy<Value = UploadCheckpoint> {
    (
        path(),
        size(),
        text(),
        (text(), text(), text()),
        size(),
        text(),
        vec(recorded_part(), 0..5),
    )
        .prop_map(
            |(source, size, mtime, (endpoint, bucket, key), part_size, upload_id, parts)| {
                UploadCheckpoint {
                    source,
                    size,
                    mtime,
                    endpoint,
                    bucket,
                    key,
                    part_size,
                    upload_id,
                    parts,
                    checksum: None,
                }
            },
        )
}

fn download_checkpoint() -> impl Strategy<Value = DownloadCheckpoint> {
    (
        (text(), text(), text(), text()),
        size(),
        any::<i64>(),
        (path(), path()),
        size(),
        vec((any::<u32>(), any::<Option<u64>>()), 0..5),
    )
        .prop_map(
            |(
                (endpoint, bucket, key, etag),
                size,
                last_modified,
                (destination, temp),
                part_size,
                done,
            )| {
                DownloadCheckpoint {
                    endpoint,
                    bucket,
                    key,
                    etag,
                    size,
                    last_modified,
                    destination,
                    temp,
                    part_size,
                    crc: (part_size % 2 == 0).then(|| "CRC64NVME".to_string()),
                    done: done
                        .into_iter()
                        .map(|(number, crc64)| DonePart { number, crc64 })
                        .collect(),
                }
            },
        )
}

/// A checkpoint file around `body` with a correct checksum, so a decoder
/// gets past the header to the body's JSON and the layout check.
fn with_valid_header(kind: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{{\"format\":\"ferry-checkpoint\",\"version\":1,\"kind\":\"{kind}\",\"sha256\":\"{}\"}}\n",
        hex::encode(Sha256::digest(body))
    )
    .into_bytes();
    out.extend_from_slice(body);
    out.push(b'\n');
    out
}

/// What the transfer layer does with a checkpoint it trusts: lays out the
/// parts and plans the resume against what the server lists.
trait Resumable: CheckpointKind + Debug {
    fn size_and_part_size(&self) -> (u64, u64);
    fn plan(&self) -> TestCaseResult;
}

impl Resumable for UploadCheckpoint {
    fn size_and_part_size(&self) -> (u64, u64) {
        (self.size, self.part_size)
    }
    fn plan(&self) -> TestCaseResult {
        let l = layout(self.size, self.part_size);
        // The server lists what the checkpoint recorded, sized as laid out
        // where the number exists.
        let listed: Vec<PartInfo> = self
            .parts
            .iter()
            .map(|p| PartInfo {
                part_number: p.number,
                etag_kind: crate::store::EtagKind::from_form(&p.etag),
                etag: p.etag.clone(),
                size: p
                    .number
                    .checked_sub(1)
                    .and_then(|i| l.get(i as usize))
                    .map_or(0, |s| s.len),
                checksum: None,
            })
            .collect();
        let plan = plan_upload_resume(&l, &self.parts, &listed);
        let mut seen: Vec<u32> = plan
            .done
            .iter()
            .map(|p| p.number)
            .chain(plan.verify.iter().map(|(s, _)| s.number))
            .chain(plan.send.iter().map(|s| s.number))
            .collect();
        seen.sort_unstable();
        let want: Vec<u32> = l.iter().map(|s| s.number).collect();
        prop_assert_eq!(seen, want, "every part is done, verified or sent, once");
        Ok(())
    }
}

impl Resumable for DownloadCheckpoint {
    fn size_and_part_size(&self) -> (u64, u64) {
        (self.size, self.part_size)
    }
    fn plan(&self) -> TestCaseResult {
        let l = layout(self.size, self.part_size);
        let done: Vec<u32> = self.done.iter().map(|d| d.number).collect();
        let todo = plan_download_resume(&l, &done, Some(self.size), self.size);
        prop_assert!(todo.len() <= l.len());
        Ok(())
    }
}

/// Decodes `bytes` as both kinds; whatever comes back is usable.
fn check_decode<K: Resumable>(bytes: &[u8]) -> Result<Result<K, CheckpointProblem>, TestCaseError> {
    let r = decode::<K>(bytes);
    match &r {
        Ok(c) => {
            let (size, part_size) = c.size_and_part_size();
            let l = layout(size, part_size);
            prop_assert!(l.len() as u64 <= MAX_PARTS);
            prop_assert_eq!(l.iter().map(|p| p.len).sum::<u64>(), size);
            c.plan()?;
        }
        // The kind problem quotes the header's `kind` as written, so a
        // header that puts a line break there breaks the message.
        Err(CheckpointProblem::Kind(k, _)) if has_line_break(k) => {}
        Err(e) => one_line("checkpoint problem", &e.to_string())?,
    }
    Ok(r)
}

fn check_decode_both(bytes: &[u8]) -> TestCaseResult {
    let _ = check_decode::<UploadCheckpoint>(bytes)?;
    let _ = check_decode::<DownloadCheckpoint>(bytes)?;
    Ok(())
}

#[test]
fn fuzz_checkpoint_arbitrary_bytes() {
    fuzz(
        "checkpoint: arbitrary bytes",
        2000,
        prop_oneof![
            vec(any::<u8>(), 0..400),
            // A header-shaped first line, so the header fields are parsed.
            (
                text(),
                any::<u32>(),
                text(),
                text(),
                vec(any::<u8>(), 0..100)
            )
                .prop_map(|(format, version, kind, sha, body)| {
                    let mut b = serde_json::json!({
                        "format": format, "version": version, "kind": kind, "sha256": sha
                    })
                    .to_string()
                    .into_bytes();
                    b.push(b'\n');
                    b.extend(body);
                    b
                }),
        ],
        |bytes| check_decode_both(&bytes),
    );
}

#[test]
fn fuzz_checkpoint_round_trip() {
    fn round_trip<K: Resumable + PartialEq>(c: K) -> TestCaseResult {
        let decoded = check_decode::<K>(&encode(&c))?;
        match c.check() {
            Ok(()) => prop_assert_eq!(decoded, Ok(c)),
            Err(why) => prop_assert_eq!(decoded, Err(CheckpointProblem::Malformed(why))),
        }
        Ok(())
    }
    fuzz(
        "checkpoint: decode(encode(x)) == x",
        1000,
        (upload_checkpoint(), download_checkpoint()),
        |(u, d)| {
            round_trip(u)?;
            round_trip(d)
        },
    );
}

#[test]
fn fuzz_checkpoint_mutated_file() {
    fuzz(
        "checkpoint: mutated files",
        2000,
        (
            upload_checkpoint(),
            download_checkpoint(),
            any::<bool>(),
            edits(),
        ),
        |(u, d, upload, e)| {
            let seed = if upload { encode(&u) } else { encode(&d) };
            check_decode_both(&mutate(&seed, &e, JSON_TOKENS))
        },
    );
}

#[test]
fn fuzz_checkpoint_mutated_body_valid_checksum() {
    /// The body stays text (the file is read as UTF-8), so every case
    /// reaches the body's JSON and the layout check.
    fn check<K: Resumable>(kind: &str, body: &[u8], e: &[Edit]) -> TestCaseResult {
        let body = String::from_utf8_lossy(&mutate(body, e, JSON_TOKENS)).into_owned();
        match check_decode::<K>(&with_valid_header(kind, body.as_bytes()))? {
            Ok(_) | Err(CheckpointProblem::Malformed(_)) => Ok(()),
            Err(other) => Err(TestCaseError::fail(format!(
                "a file with a valid header and checksum was refused as {other:?}"
            ))),
        }
    }
    fuzz(
        "checkpoint: mutated bodies under a valid checksum",
        2000,
        (
            upload_checkpoint(),
            download_checkpoint(),
            any::<bool>(),
            edits(),
        ),
        |(u, d, upload, e)| {
            if upload {
                let body = serde_json::to_vec(&u).unwrap();
                check::<UploadCheckpoint>("upload", &body, &e)
            } else {
                let body = serde_json::to_vec(&d).unwrap();
                check::<DownloadCheckpoint>("download", &body, &e)
            }
        },
    );
}

// ---------------------------------------------------------------------------
// The config file

const TOML_TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    "\"\"\"",
    "'''",
    "\\u0000",
    "\\U0010FFFF",
    "\\",
    "\n",
    "\r\n",
    "#",
    ",",
    "{",
    "}",
    ".",
    "[jobs.a]\n",
    "[jobs.\"\"]\n",
    "[defaults]\n",
    "[profiles.p]\n",
    "[profiles.oss-hz]\n",
    "source = \"/d\"\n",
    "source = \"s3://bkt/x\"\n",
    "destination = \"s3://bkt/x\"\n",
    "destination = \"/d/in\"\n",
    "profile = \"p\"\n",
    "part_size = ",
    "\"99999999999999999999T\"",
    "\"1.5G\"",
    "\"0.0000001\"",
    "debounce = ",
    "rescan_interval = ",
    "\"10000000000000000000\"",
    "\"9999999999w\"",
    "1e300",
    "-1.0",
    "nan",
    "inf",
    "18446744073709551615",
    "-9223372036854775808",
    "max_delete = \"101%\"",
    "max_delete = \"%\"",
    "scheme = \"oss\"",
    "addressing_style = \"path\"",
    "signature_version = \"v1\"",
    "endpoint = \"http://[::1\"",
    "1979-05-27T07:32:00Z",
    "true",
    "\u{1F600}",
    "\u{feff}",
    "\t",
];

/// Parses, validates and resolves every job and profile of `text`.
fn check_config_text(text: &str) -> TestCaseResult {
    let cfg = match ConfigFile::parse(text, Path::new("c.toml")) {
        Ok(c) => c,
        Err(e) => {
            // toml's syntax messages add an "expected ..." line of their
            // own, so only the first line is checked here.
            let msg = e.to_string();
            prop_assert!(msg.starts_with("c.toml:"), "names the file: {msg}");
            return Ok(());
        }
    };
    if let Err(e) = cfg.validate_jobs() {
        return check_config_error(&e.to_string(), text);
    }
    check_resolved(&cfg, None, values_may_break_lines(text))
}

/// Whether a TOML text can hold a line break inside a value: only
/// through an escape or a multi-line string.
fn values_may_break_lines(text: &str) -> bool {
    text.contains('\\') || text.contains("\"\"\"") || text.contains("'''")
}

/// Validation errors name the file and line:column, and are one line
/// unless the file itself put a line break into a value (an escape or a
/// multi-line string), which some messages quote.
fn check_config_error(msg: &str, text: &str) -> TestCaseResult {
    prop_assert!(msg.starts_with("c.toml:"), "names the file: {msg}");
    if !values_may_break_lines(text) {
        one_line("config error", msg)?;
    }
    Ok(())
}

/// What commands do with a valid file: resolve each job (flags > job >
/// defaults > built-in), show it, and resolve each profile's endpoint.
fn check_resolved(
    cfg: &ConfigFile,
    secret: Option<&str>,
    multi_line_values: bool,
) -> TestCaseResult {
    let env: HashMap<&str, &str> = [("HOME", "/home/u")].into_iter().collect();
    for name in cfg.job_names() {
        let job = cfg
            .resolve_job(&name, &JobTable::default(), &env)
            .map_err(|e| TestCaseError::fail(format!("a validated job does not resolve: {e}")))?;
        prop_assert_eq!(job.describe().len(), 30);
        // The watcher schedules its next pass at `Instant::now() + rescan_interval`.
        for d in [job.debounce.value, job.rescan_interval.value] {
            prop_assert!(
                Instant::now().checked_add(d).is_some(),
                "job '{}': an accepted duration of {:?} cannot be waited for",
                name,
                d
            );
        }
    }
    for name in cfg.profiles.keys() {
        for dialect in [Dialect::S3, Dialect::Oss] {
            let flags = EndpointFlags {
                profile: Some(name.clone()),
                // Only the generated configs name credentials files, all
                // inside a temporary directory.
                no_sign_request: secret.is_none(),
                ..Default::default()
            };
            if let Err(e) = resolve_endpoint(dialect, &flags, cfg, &env) {
                let msg = e.to_string();
                if let Some(s) = secret {
                    prop_assert!(!msg.contains(s), "the secret is in: {msg}");
                }
                if !multi_line_values {
                    one_line("endpoint error", &msg)?;
                }
            }
        }
    }
    Ok(())
}

const EXAMPLES: &[&str] = &[
    include_str!("../config/profiles.toml"),
    include_str!("../config/nightly-home-to-oss.toml"),
    include_str!("../config/project-watch-s3.toml"),
    include_str!("../config/restore-download.toml"),
    "[profiles.p]\nscheme = \"s3\"\nendpoint = \"http://127.0.0.1:3900\"\nregion = \"garage\"\naddressing_style = \"path\"\n\
     [defaults]\njobs = 3\nbwlimit = \"5M\"\nmax_delete = \"50%\"\ndebounce = 0.5\n\
     [jobs.a]\nsource = \"/d\"\ndestination = \"s3://bkt/x\"\nprofile = \"p\"\npart_size = \"8M\"\n\
     bigfile_threshold = 1048576\nrescan_interval = \"5m\"\ninclude = [\"*.rs\"]\nexclude = [\"target/\"]\n\
     [jobs.b]\nsource = \"oss://bkt/y/\"\ndestination = \"/restore\"\nmax_delete = 10\ndelete = true\n",
];

#[test]
fn fuzz_config_arbitrary_text() {
    fuzz(
        "config: arbitrary text",
        1000,
        prop_oneof![
            any::<String>(),
            // Mostly TOML's own characters, so tables and keys form.
            "[\\[\\]a-z_.=\" \n0-9#'{},-]{0,120}",
        ],
        |text| check_config_text(&text),
    );
}

#[test]
fn fuzz_config_mutated_examples() {
    fuzz(
        "config: mutated examples",
        1500,
        (any::<Index>(), edits()),
        |(i, e)| {
            check_config_text(&mutate_text(
                EXAMPLES[i.index(EXAMPLES.len())],
                &e,
                TOML_TOKENS,
            ))
        },
    );
}

/// A TOML string literal.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A table-name segment: bare when it can be.
fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        s.to_string()
    } else {
        toml_str(s)
    }
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,2}",
        1 => any::<String>(),
    ]
}

fn location_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "(s3|oss|S3|http|)://[a-z0-9.-]{0,8}(/[a-z./ ]{0,6}){0,3}",
        "/[a-z]{1,4}(/[a-z.]{0,4}){0,2}",
        "[a-z./]{0,8}",
        any::<String>(),
    ]
}

fn size_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,25}(\\.[0-9]{0,4})? ?([kKmMgGtT]i?[bB]?|[bB]|x)?",
        any::<String>(),
    ]
}

fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,25}(\\.[0-9]{0,4})? ?(ms|s|m|h|d|w|y)?",
        any::<String>(),
    ]
}

/// One `key = value` line of a job or `[defaults]`, sometimes of the wrong type.
fn job_line() -> impl Strategy<Value = String> {
    let s = |k: &'static str, st: BoxedStrategy<String>| {
        st.prop_map(move |v| format!("{k} = {}", toml_str(&v)))
    };
    let raw =
        |k: &'static str, st: BoxedStrategy<String>| st.prop_map(move |v| format!("{k} = {v}"));
    prop_oneof![
        s("source", location_text().boxed()),
        s("destination", location_text().boxed()),
        s("profile", name().boxed()),
        raw("update", "true|false|1".boxed()),
        raw("delete", "true|false".boxed()),
        raw("follow_symlinks", "true|false".boxed()),
        raw("allow_empty_source", "true|false".boxed()),
        vec(text(), 0..3).prop_map(|v| format!(
            "include = [{}]",
            v.iter().map(|s| toml_str(s)).collect::<Vec<_>>().join(", ")
        )),
        vec(text(), 0..3).prop_map(|v| format!(
            "exclude = [{}]",
            v.iter().map(|s| toml_str(s)).collect::<Vec<_>>().join(", ")
        )),
        s("checkpoint_dir", text().boxed()),
        raw("jobs", any::<i64>().prop_map(|n| n.to_string()).boxed()),
        raw("parallel", any::<u64>().prop_map(|n| n.to_string()).boxed()),
        s("part_size", size_text().boxed()),
        raw(
            "bigfile_threshold",
            any::<i64>().prop_map(|n| n.to_string()).boxed()
        ),
        s("bwlimit", size_text().boxed()),
        s("debounce", duration_text().boxed()),
        s("rescan_interval", duration_text().boxed()),
        raw(
            "debounce",
            any::<f64>()
                .prop_map(|f| toml::Value::Float(f).to_string())
                .boxed()
        ),
        raw(
            "rescan_interval",
            any::<f64>()
                .prop_map(|f| toml::Value::Float(f).to_string())
                .boxed()
        ),
        s("max_delete", "[0-9]{0,4}%?|[0-9]{1,22}|x".boxed()),
        raw(
            "max_delete",
            any::<i64>().prop_map(|n| n.to_string()).boxed()
        ),
        s("unknown_key", text().boxed()),
    ]
}

/// One line of a profile. The inline secret, when there is one, is always
/// written intact as the value of `secret_access_key`.
fn profile_line(secret: String, creds_file: String) -> impl Strategy<Value = String> {
    let s = |k: &'static str, st: BoxedStrategy<String>| {
        st.prop_map(move |v| format!("{k} = {}", toml_str(&v)))
    };
    prop_oneof![
        s("scheme", "s3|oss|S3|gcs".boxed()),
        s(
            "endpoint",
            prop_oneof![
                "(https?://)?[a-z0-9.-]{0,12}(:[0-9]{0,6})?(/[a-z]{0,3})?",
                "oss-[a-z-]{0,12}(-internal)?\\.aliyuncs\\.com",
                any::<String>(),
            ]
            .boxed()
        ),
        s("region", text().boxed()),
        s("addressing_style", "path|virtual|other".boxed()),
        s("signature_version", "v1|v4|V1|v2".boxed()),
        s("access_key_id_env", "[A-Z_]{1,6}".boxed()),
        s("secret_access_key_env", "[A-Z_]{1,6}".boxed()),
        s("session_token_env", "[A-Z_]{1,6}".boxed()),
        s("credentials_profile", name().boxed()),
        Just(format!("credentials_file = {}", toml_str(&creds_file))),
        s("access_key_id", "AKIA[A-Z0-9]{0,8}".boxed()),
        Just(format!("secret_access_key = {}", toml_str(&secret))),
        s("secret_acess_key", text().boxed()),
    ]
}

#[derive(Debug, Clone)]
struct GeneratedConfig {
    text: String,
    secret: String,
    world_readable: bool,
}

fn generated_config(creds_file: String) -> impl Strategy<Value = GeneratedConfig> {
    let secret = "[A-Za-z0-9/+]{20}".prop_map(|s| format!("SECRET{s}"));
    (secret, any::<bool>()).prop_flat_map(move |(secret, world_readable)| {
        let table = |header: BoxedStrategy<String>, lines: BoxedStrategy<String>| {
            (header, vec(lines, 0..6)).prop_map(|(h, l)| format!("{h}\n{}\n", l.join("\n")))
        };
        let profile = table(
            name()
                .prop_map(|n| format!("[profiles.{}]", toml_key(&n)))
                .boxed(),
            profile_line(secret.clone(), creds_file.clone()).boxed(),
        );
        let defaults = table(Just("[defaults]".to_string()).boxed(), job_line().boxed());
        // Most jobs start with a valid pair, so validation gets past them.
        let pair = prop_oneof![
            Just(String::new()),
            Just("source = \"/data\"\ndestination = \"s3://bkt/x\"\n".to_string()),
            Just("source = \"oss://bkt/y/\"\ndestination = \"/restore\"\n".to_string()),
        ];
        let job = (name(), pair, vec(job_line(), 0..6))
            .prop_map(|(n, p, l)| format!("[jobs.{}]\n{p}{}\n", toml_key(&n), l.join("\n")));
        (
            vec(profile, 0..3),
            prop::option::of(defaults),
            vec(job, 0..3),
        )
            .prop_map(move |(p, d, j)| GeneratedConfig {
                text: format!("{}{}{}", p.concat(), d.unwrap_or_default(), j.concat()),
                secret: secret.clone(),
                world_readable,
            })
    })
}

#[test]
fn fuzz_config_generated_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    let creds = dir.path().join("credentials");
    let env: HashMap<&str, &str> = [("HOME", "/home/u")].into_iter().collect();
    fuzz(
        "config: generated files through config::load",
        800,
        generated_config(creds.display().to_string()),
        |g| {
            rewrite(&file, &g.text);
            let mode = if g.world_readable { 0o644 } else { 0o600 };
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            match crate::config::load(Some(&file), &env) {
                Ok(cfg) => check_resolved(&cfg, Some(&g.secret), values_may_break_lines(&g.text)),
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(!msg.contains(&g.secret), "the secret is in: {msg}");
                    prop_assert!(
                        msg.starts_with(&file.display().to_string()),
                        "names the file: {msg}"
                    );
                    Ok(())
                }
            }
        },
    );
}

// ---------------------------------------------------------------------------
// The store's XML bodies

const XML_TOKENS: &[&str] = &[
    "<",
    ">",
    "</",
    "/>",
    "=\"",
    "\"",
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
    "<ListBucketResult>",
    "</ListBucketResult>",
    "<Contents>",
    "</Contents>",
    "<Key>",
    "</Key>",
    "<Size>",
    "</Size>",
    "<ETag>",
    "</ETag>",
    "<LastModified>",
    "</LastModified>",
    "<IsTruncated>true</IsTruncated>",
    "<IsTruncated>false</IsTruncated>",
    "<EncodingType>url</EncodingType>",
    "<NextContinuationToken>",
    "</NextContinuationToken>",
    "<CommonPrefixes><Prefix>",
    "</Prefix></CommonPrefixes>",
    "<Part>",
    "</Part>",
    "<PartNumber>",
    "</PartNumber>",
    "<NextPartNumberMarker>",
    "<Upload>",
    "</Upload>",
    "<UploadId>",
    "</UploadId>",
    "<Initiated>",
    "<NextKeyMarker>",
    "<Error>",
    "</Error>",
    "<Code>",
    "</Code>",
    "<Message>",
    "<RequestId>",
    "&amp;",
    "&lt;",
    "&quot;",
    "&#0;",
    "&#x10FFFF;",
    "&#xD800;",
    "&#99999999999;",
    "&unknown;",
    "&",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<!DOCTYPE x [<!ENTITY a \"b\">]>",
    " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"",
    "%",
    "%FF",
    "%C3%A9",
    "%2",
    "+",
    "-1",
    "0",
    "4294967296",
    "18446744073709551616",
    "9999-12-31T23:59:59.999Z",
    "2024-02-30T00:00:00Z",
    "+275760-09-13T00:00:00Z",
    "1970-01-01T00:00:00+25:00",
    "\u{feff}",
    "\0",
];

/// Every body parser and date parser on one input.
fn check_xml(body: &str) -> TestCaseResult {
    let errors = [
        xml::parse_list_objects(body, ListEncoding::S3).err(),
        xml::parse_list_objects(body, ListEncoding::OSS).err(),
        xml::parse_list_parts(body).err(),
        xml::parse_initiate(body).err(),
        xml::parse_list_uploads(body).err(),
        xml::parse_delete_result(body).err(),
        xml::parse_iso8601(body).err(),
        xml::parse_http_date(body).err(),
    ];
    for e in errors.into_iter().flatten() {
        // Messages quote what they could not read (a tag name, a value),
        // so only a body with line breaks can break them.
        if !has_line_break(body) {
            one_line("XML parse error", &e.to_string())?;
        }
    }
    // A 200 with an `<Error>` body (the message is the server's own text).
    let _ = xml::check_embedded_error(body);
    let _ = xml::parse_etag_result("CompleteMultipartUpload", body);
    let _ = xml::parse_error(body);
    Ok(())
}

fn timestamp() -> impl Strategy<Value = OffsetDateTime> {
    // 1970 to 9999, with milliseconds.
    (0i64..253_402_300_798, 0i64..1000).prop_map(|(s, ms)| {
        OffsetDateTime::from_unix_timestamp(s).unwrap() + time::Duration::milliseconds(ms)
    })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// Text as a compliant server writes it: any character XML 1.0 allows
/// (no C0 controls but tab and line feed; carriage returns are normalised
/// away by XML itself). Not starting or ending with white space: the XML
/// deserializer trims text, so `" a "` reads as `"a"`.
fn xml_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9/._ +%&<>\"'=-]{0,16}",
        1 => "[^\u{0}-\u{8}\u{b}-\u{1f}\u{fffe}\u{ffff}]{0,16}",
    ]
    .prop_map(|s| s.trim_matches([' ', '\t', '\n']).to_string())
}

fn raw_etag() -> impl Strategy<Value = String> {
    (
        "[0-9a-f]{32}(-[0-9]{1,5})?",
        prop_oneof![Just(""), Just("W/")],
        any::<bool>(),
    )
        .prop_map(|(hex, weak, quoted)| {
            if quoted {
                format!("{weak}\"{hex}\"")
            } else {
                hex
            }
        })
}

#[derive(Debug, Clone)]
struct ListingCase {
    objects: Vec<(String, u64, String, OffsetDateTime)>,
    prefixes: Vec<String>,
    truncated: bool,
    token: Option<String>,
    /// `None`: the server ignored `encoding-type=url`.
    encoding: Option<ListEncoding>,
    declaration: bool,
}

fn listing_case() -> impl Strategy<Value = ListingCase> {
    (
        vec(
            (any::<String>(), any::<u64>(), raw_etag(), timestamp()),
            0..4,
        ),
        vec(any::<String>(), 0..3),
        any::<bool>(),
        prop::option::of(any::<String>()),
        prop_oneof![
            Just(None),
            Just(Some(ListEncoding::S3)),
            Just(Some(ListEncoding::OSS))
        ],
        any::<bool>(),
        (
            vec(xml_text(), 0..4),
            vec(xml_text(), 0..3),
            prop::option::of(xml_text()),
        ),
    )
        .prop_map(
            |(objects, prefixes, truncated, token, encoding, declaration, verbatim)| {
                // What a store sends unencoded must be XML text; encoded,
                // anything goes. S3 never encodes its (opaque) tokens.
                let token = match encoding {
                    Some(enc) if enc.token_encoded => token,
                    _ => verbatim.2,
                };
                let (objects, prefixes) = match encoding {
                    Some(_) => (objects, prefixes),
                    None => (
                        objects
                            .into_iter()
                            .zip(verbatim.0)
                            .map(|((_, s, e, t), k)| (k, s, e, t))
                            .collect(),
                        verbatim.1,
                    ),
                };
                ListingCase {
                    objects,
                    prefixes,
                    truncated,
                    token,
                    encoding,
                    declaration,
                }
            },
        )
}

/// How each store writes a name under `encoding-type=url`: AWS
/// form-encodes (`+` for a space), OSS percent-encodes.
fn url_encode(s: &str, enc: ListEncoding) -> String {
    let p = utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    if enc.plus_is_space {
        p.replace("%20", "+")
    } else {
        p
    }
}

fn listing_xml(c: &ListingCase) -> String {
    let name = |s: &str| match c.encoding {
        Some(enc) => url_encode(s, enc),
        None => escape(s),
    };
    let mut x = String::new();
    if c.declaration {
        x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    }
    x.push_str(
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>",
    );
    if c.encoding.is_some() {
        x.push_str("<EncodingType>url</EncodingType>");
    }
    x.push_str(&format!("<IsTruncated>{}</IsTruncated>", c.truncated));
    for (key, size, etag, lm) in &c.objects {
        x.push_str(&format!(
            "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            name(key),
            rfc3339(*lm),
            escape(etag)
        ));
    }
    for p in &c.prefixes {
        x.push_str(&format!(
            "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
            name(p)
        ));
    }
    if let Some(t) = &c.token {
        let t = match c.encoding {
            Some(enc) if enc.token_encoded => url_encode(t, enc),
            _ => escape(t),
        };
        x.push_str(&format!(
            "<NextContinuationToken>{t}</NextContinuationToken>"
        ));
    }
    x.push_str("</ListBucketResult>");
    x
}

#[test]
fn fuzz_xml_listing_round_trip() {
    fuzz("XML: ListObjectsV2 round trip", 1000, listing_case(), |c| {
        let body = listing_xml(&c);
        let enc = c.encoding.unwrap_or(ListEncoding::S3);
        let parsed = xml::parse_list_objects(&body, enc);
        if c.truncated && c.token.is_none() {
            prop_assert!(
                parsed.is_err(),
                "a truncated page without a token is an error"
            );
            return Ok(());
        }
        let page = parsed.map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
        let keys: Vec<(&str, u64, &str, OffsetDateTime)> = page
            .objects
            .iter()
            .map(|o| (o.key.as_str(), o.size, o.etag.as_str(), o.last_modified))
            .collect();
        let want: Vec<(&str, u64, &str, OffsetDateTime)> = c
            .objects
            .iter()
            .map(|(k, s, e, t)| (k.as_str(), *s, normalize_etag(e), *t))
            .collect();
        prop_assert_eq!(keys, want, "{}", body);
        prop_assert_eq!(&page.prefixes, &c.prefixes, "{}", body);
        let token = if c.truncated { c.token.clone() } else { None };
        prop_assert_eq!(page.next_token, token, "{}", body);
        Ok(())
    });
}

#[derive(Debug, Clone)]
struct PartsCase {
    parts: Vec<(u32, String, u64)>,
    truncated: bool,
    marker: Option<u32>,
}

fn parts_xml(c: &PartsCase) -> String {
    let mut x = format!("<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>u</UploadId><IsTruncated>{}</IsTruncated>", c.truncated);
    if let Some(m) = c.marker {
        x.push_str(&format!("<NextPartNumberMarker>{m}</NextPartNumberMarker>"));
    }
    for (n, e, s) in &c.parts {
        x.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><LastModified>2024-01-02T03:04:05.000Z</LastModified><ETag>{}</ETag><Size>{s}</Size></Part>",
            escape(e)
        ));
    }
    x.push_str("</ListPartsResult>");
    x
}

#[derive(Debug, Clone)]
struct UploadsCase {
    uploads: Vec<(String, String, OffsetDateTime)>,
    truncated: bool,
    next: (Option<String>, Option<String>),
}

fn uploads_xml(c: &UploadsCase) -> String {
    let mut x = format!(
        "<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>{}</IsTruncated>",
        c.truncated
    );
    if let Some(k) = &c.next.0 {
        x.push_str(&format!("<NextKeyMarker>{}</NextKeyMarker>", escape(k)));
    }
    if let Some(u) = &c.next.1 {
        x.push_str(&format!(
            "<NextUploadIdMarker>{}</NextUploadIdMarker>",
            escape(u)
        ));
    }
    for (k, u, t) in &c.uploads {
        x.push_str(&format!(
            "<Upload><Key>{}</Key><UploadId>{}</UploadId><Initiated>{}</Initiated></Upload>",
            escape(k),
            escape(u),
            rfc3339(*t)
        ));
    }
    x.push_str("</ListMultipartUploadsResult>");
    x
}

type ErrorCase = (Option<String>, Option<String>, Option<String>);

fn error_xml((code, message, id): &ErrorCase) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>");
    for (tag, v) in [("Code", code), ("Message", message), ("RequestId", id)] {
        if let Some(v) = v {
            x.push_str(&format!("<{tag}>{}</{tag}>", escape(v)));
        }
    }
    x.push_str("<HostId>h</HostId></Error>");
    x
}

fn delete_xml(errors: &[(String, String, String)]) -> String {
    let mut x = String::from("<DeleteResult>");
    for (k, c, m) in errors {
        x.push_str(&format!(
            "<Error><Key>{}</Key><Code>{}</Code><Message>{}</Message></Error>",
            escape(k),
            escape(c),
            escape(m)
        ));
    }
    x.push_str("</DeleteResult>");
    x
}

fn parts_case() -> impl Strategy<Value = PartsCase> {
    (
        vec((any::<u32>(), raw_etag(), any::<u64>()), 0..4),
        any::<bool>(),
        any::<Option<u32>>(),
    )
        .prop_map(|(parts, truncated, marker)| PartsCase {
            parts,
            truncated,
            marker,
        })
}

fn uploads_case() -> impl Strategy<Value = UploadsCase> {
    (
        vec((xml_text(), xml_text(), timestamp()), 0..4),
        any::<bool>(),
        (prop::option::of(xml_text()), prop::option::of(xml_text())),
    )
        .prop_map(|(uploads, truncated, next)| UploadsCase {
            uploads,
            truncated,
            next,
        })
}

fn error_case() -> impl Strategy<Value = ErrorCase> {
    (
        prop::option::of("[A-Za-z]{1,12}"),
        prop::option::of(xml_text()),
        prop::option::of("[A-Z0-9]{1,16}"),
    )
}

#[test]
fn fuzz_xml_multipart_and_error_round_trip() {
    fuzz(
        "XML: ListParts, ListMultipartUploads, DeleteObjects, errors round trip",
        1000,
        (
            parts_case(),
            uploads_case(),
            error_case(),
            vec((xml_text(), "[A-Za-z]{0,12}", xml_text()), 0..3),
            (xml_text(), raw_etag()),
        ),
        |(p, u, e, d, (upload_id, etag))| {
            let page = xml::parse_list_parts(&parts_xml(&p))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got: Vec<(u32, &str, u64)> = page
                .parts
                .iter()
                .map(|x| (x.part_number, x.etag.as_str(), x.size))
                .collect();
            let want: Vec<(u32, &str, u64)> = p
                .parts
                .iter()
                .map(|(n, e, s)| (*n, normalize_etag(e), *s))
                .collect();
            prop_assert_eq!(got, want);
            let marker = if p.truncated {
                p.marker.or(p.parts.last().map(|x| x.0))
            } else {
                None
            };
            prop_assert_eq!(page.next_marker, marker);

            let body = uploads_xml(&u);
            let page = xml::parse_list_uploads(&body)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
            let got: Vec<(&str, &str, OffsetDateTime)> = page
                .uploads
                .iter()
                .map(|x| (x.key.as_str(), x.upload_id.as_str(), x.initiated))
                .collect();
            let want: Vec<(&str, &str, OffsetDateTime)> = u
                .uploads
                .iter()
                .map(|(k, i, t)| (k.as_str(), i.as_str(), *t))
                .collect();
            prop_assert_eq!(got, want, "{}", body);
            let next = u.truncated.then(|| {
                (
                    u.next.0.clone().unwrap_or_default(),
                    u.next.1.clone().unwrap_or_default(),
                )
            });
            prop_assert_eq!(page.next, next, "{}", body);

            let body = error_xml(&e);
            prop_assert_eq!(xml::parse_error(&body), Some(e.clone()), "{}", body);
            let err = xml::check_embedded_error(&body).expect_err("an <Error> body is an error");
            prop_assert_eq!((&err.code, &err.request_id), (&e.0, &e.2));
            prop_assert_eq!(&err.message, e.1.as_deref().unwrap_or(""));
            prop_assert!(xml::parse_etag_result("CopyObject", &body).is_err());

            let body = delete_xml(&d);
            let failures = xml::parse_delete_result(&body)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{body}")))?;
            let got: Vec<(&str, &str, &str)> = failures
                .iter()
                .map(|f| (f.key.as_str(), f.code.as_str(), f.message.as_str()))
                .collect();
            let want: Vec<(&str, &str, &str)> = d
                .iter()
                .map(|(k, c, m)| (k.as_str(), c.as_str(), m.as_str()))
                .collect();
            prop_assert_eq!(got, want, "{}", body);

            let body = format!("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>{}</UploadId></InitiateMultipartUploadResult>", escape(&upload_id));
            prop_assert_eq!(
                xml::parse_initiate(&body).map_err(|e| TestCaseError::fail(e.to_string()))?,
                upload_id
            );
            let body = format!("<CompleteMultipartUploadResult><Location>l</Location><ETag>{}</ETag></CompleteMultipartUploadResult>", escape(&etag));
            prop_assert_eq!(
                xml::parse_etag_result("CompleteMultipartUpload", &body)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?
                    .0,
                normalize_etag(&etag)
            );
            Ok(())
        },
    );
}

#[test]
fn fuzz_xml_arbitrary_text() {
    fuzz(
        "XML: arbitrary text",
        1500,
        prop_oneof![any::<String>(), "[<>/a-zA-Z &;#\"=?!\\[\\]-]{0,80}",],
        |body| check_xml(&body),
    );
}

#[test]
fn fuzz_xml_mutated_documents() {
    let seed = prop_oneof![
        listing_case().prop_map(|c| listing_xml(&c)),
        parts_case().prop_map(|c| parts_xml(&c)),
        uploads_case().prop_map(|c| uploads_xml(&c)),
        error_case().prop_map(|c| error_xml(&c)),
        vec((xml_text(), "[A-Za-z]{0,12}", xml_text()), 0..3).prop_map(|d| delete_xml(&d)),
        timestamp().prop_map(rfc3339),
        timestamp().prop_map(xml::format_http_date),
    ];
    fuzz(
        "XML: mutated documents",
        2000,
        (seed, edits()),
        |(seed, e)| check_xml(&mutate_text(&seed, &e, XML_TOKENS)),
    );
}

#[test]
fn fuzz_xml_dates_round_trip() {
    fuzz("XML: date formats round trip", 1000, timestamp(), |t| {
        let parsed =
            xml::parse_iso8601(&rfc3339(t)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed, t);
        let whole = t.replace_millisecond(0).unwrap();
        let parsed = xml::parse_http_date(&xml::format_http_date(t))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed, whole);
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// `mtime` metadata, sizes, durations, delete limits

/// Nanosecond times whose seconds fit a file time (what `parse_mtime` accepts).
fn nanos() -> impl Strategy<Value = Nanos> {
    let max = i64::MAX as i128 * 1_000_000_000 + 999_999_999;
    let min = i64::MIN as i128 * 1_000_000_000 - 999_999_999;
    prop_oneof![
        min..=max,
        -10_000_000_000_000_000_000i128..10_000_000_000_000_000_000,
        Just(0),
        Just(max),
        Just(min),
    ]
}

#[test]
fn fuzz_mtime_metadata() {
    fuzz(
        "mtime: arbitrary and number-like metadata, round trip",
        3000,
        (
            prop_oneof![
                any::<String>(),
                " ?-?[0-9]{0,30}(\\.[0-9a-z]{0,14})? ?",
                "[-+.0-9eE_ ]{0,12}",
            ],
            nanos(),
        ),
        |(s, ns)| {
            if let Some(v) = parse_mtime(&s) {
                // What a download then does with it.
                let _ = to_filetime(v);
                prop_assert_eq!(parse_mtime(&format_mtime(v)), Some(v), "{:?}", s);
            }
            prop_assert_eq!(parse_mtime(&format_mtime(ns)), Some(ns));
            Ok(())
        },
    );
}

fn quantity_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        " ?[0-9]{0,25}(\\.[0-9]{0,6})? ?(ms|s|m|h|d|w|[kKmMgGtT](i?[bB])?|[bB]|%|y|e9)? ?",
        "[-+.0-9eE%a-z ]{0,10}",
    ]
}

#[test]
fn fuzz_units_sizes_durations_limits() {
    const SIZE_UNITS: [(&str, u32); 5] = [("", 0), ("K", 10), ("MiB", 20), ("g", 30), ("TB", 40)];
    const DURATION_UNITS: [(&str, u64); 5] = [
        ("s", 1),
        ("m", 60),
        ("h", 3600),
        ("d", 86400),
        ("w", 604800),
    ];
    fuzz(
        "units: sizes, durations, delete limits",
        3000,
        (
            quantity_text(),
            0u64..(1 << 40),
            any::<Index>(),
            any::<u64>(),
        ),
        |(s, n, unit, bytes)| {
            for (what, r) in [
                ("size", parse_size(&s).map(|_| ())),
                ("duration", parse_duration(&s, "s").map(|_| ())),
                // `--older-than`: bare numbers are days.
                ("age", parse_duration(&s, "d").map(|_| ())),
                ("delete limit", MaxDelete::parse(&s).map(|_| ())),
            ] {
                if let Err(e) = r {
                    // The message quotes the input, so only that can break it.
                    if !has_line_break(&s) {
                        one_line(what, &e)?;
                    }
                }
            }
            for d in [parse_duration(&s, "s"), parse_duration(&s, "d")]
                .into_iter()
                .flatten()
            {
                prop_assert!(
                    Instant::now().checked_add(d).is_some(),
                    "{:?} is accepted as {:?}, which no clock can wait for",
                    s,
                    d
                );
            }
            if let Ok(m) = MaxDelete::parse(&s) {
                prop_assert_eq!(MaxDelete::parse(&m.to_string()), Ok(m));
            }
            // Whole numbers of a unit are exact.
            let (u, shift) = SIZE_UNITS[unit.index(SIZE_UNITS.len())];
            let small = n >> shift;
            prop_assert_eq!(parse_size(&format!("{small}{u}")), Ok(small << shift));
            let (u, secs) = DURATION_UNITS[unit.index(DURATION_UNITS.len())];
            let count = n % 5000;
            prop_assert_eq!(
                parse_duration(&format!("{count}{u}"), "s"),
                Ok(Duration::from_secs(count * secs))
            );
            let _ = human(bytes);
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// URLs, endpoints and listing keys

fn url_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "(s3|oss|S3|OSS|http|file|)(://|:/|:)[a-z0-9.-]{0,70}(/[a-z0-9. %~\\n-]{0,8}){0,4}/?",
        ("(s3|oss)://[a-z0-9]{3,8}/", any::<String>()).prop_map(|(a, b)| a + &b),
        ("s3://bkt/", 1000usize..1100).prop_map(|(a, n)| a + &"k".repeat(n)),
    ]
}

#[test]
fn fuzz_locations() {
    fuzz("location: URLs and paths", 3000, url_text(), |s| {
        match Location::parse(&s) {
            Ok(Location::Remote(r)) => {
                prop_assert!(validate_bucket(&r.bucket).is_ok());
                prop_assert!(r.key.len() <= MAX_KEY_LEN);
                // What ferry prints names the same object.
                prop_assert_eq!(Location::parse(&r.to_string()), Ok(Location::Remote(r)));
            }
            Ok(Location::Local(p)) => prop_assert_eq!(p.as_os_str(), s.as_str()),
            Err(e) => {
                if !s.chars().any(char::is_control) {
                    one_line("location error", &e.to_string())?;
                }
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_endpoints() {
    fuzz(
        "endpoint: --endpoint and --region values",
        2000,
        (
            prop_oneof![
                any::<String>(),
                "(https?://|ftp://|)[a-z0-9.:\\[\\]@%-]{0,24}(:[0-9]{0,6})?(/[a-z]{0,4})?",
                "oss-[a-z-]{0,12}(-internal)?\\.aliyuncs\\.com",
            ],
            prop::option::of(text()),
            any::<bool>(),
        ),
        |(endpoint, region, oss)| {
            let dialect = if oss { Dialect::Oss } else { Dialect::S3 };
            let flags = EndpointFlags {
                endpoint: Some(endpoint.clone()),
                region,
                no_sign_request: true,
                ..Default::default()
            };
            let env: HashMap<&str, &str> = HashMap::new();
            match resolve_endpoint(dialect, &flags, &ConfigFile::default(), &env) {
                Ok(s) => {
                    prop_assert!(matches!(s.endpoint.scheme(), "http" | "https"));
                    prop_assert!(s.endpoint.host_str().is_some());
                }
                Err(e) => {
                    if !endpoint.chars().any(char::is_control) {
                        one_line("endpoint error", &e.to_string())?;
                    }
                }
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_listing_keys_to_paths() {
    use crate::mount::names::{object_name, prefix_name, split_relative};
    use crate::transfer::paths::{key_basename, safe_relative_path};
    fuzz(
        "keys: listing keys to local paths and mount names",
        3000,
        (
            prop_oneof![
                any::<String>(),
                "[a./\\\\\0 ]{0,12}",
                "(\\.\\.?|[a-z]{1,3}|)(/(\\.\\.?|[a-z]{1,3}|)){0,4}",
            ],
            "(|m/|m/a/)",
        ),
        |(key, dir)| {
            if let Ok(p) = safe_relative_path(&key) {
                // A download never leaves its destination.
                prop_assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
                prop_assert!(Path::new("/dest").join(&p).starts_with("/dest"));
                prop_assert_eq!(p.to_str(), Some(key.as_str()));
            }
            let _ = key_basename(&key);
            if let Some((dirs, file)) = split_relative(&key) {
                prop_assert_eq!(
                    format!(
                        "{}{file}",
                        dirs.iter().map(|d| format!("{d}/")).collect::<String>()
                    ),
                    key.clone()
                );
            }
            let _ = (object_name(&dir, &key), prefix_name(&dir, &key));
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// The known-mtimes cache

#[derive(Debug, Clone)]
struct KnownEntry {
    key: String,
    etag: String,
    size: u64,
    lm: Option<i64>,
    mtime: Option<Nanos>,
}

fn known_entries() -> impl Strategy<Value = Vec<KnownEntry>> {
    vec(
        (
            text(),
            "[0-9a-f]{1,32}",
            any::<u64>(),
            any::<Option<i64>>(),
            prop::option::of(nanos()),
        )
            .prop_map(|(key, etag, size, lm, mtime)| KnownEntry {
                key,
                etag,
                size,
                lm,
                mtime,
            }),
        0..5,
    )
}

fn save_known(path: &Path, entries: &[KnownEntry]) {
    let k = KnownMtimes::load(Some(path.to_path_buf()));
    for e in entries {
        k.record(&e.key, &e.etag, e.size, e.lm, e.mtime);
    }
    k.save(false);
}

/// Replaces the cache's one segment with `bytes`, then looks up, in key
/// order as a listing would, every entry the valid file held: whatever the
/// damage, an answer is either a miss or what was recorded.
fn check_known_file(path: &Path, bytes: &[u8], want: &[(&KnownEntry, Known)]) -> TestCaseResult {
    let segs = crate::sync::known::segments::list(path);
    prop_assert_eq!(segs.len(), 1);
    rewrite(&segs[0].1, bytes);
    let k = KnownMtimes::load(Some(path.to_path_buf()));
    for (x, known) in want {
        if let Some(got) = k.lookup(&x.key, &x.etag, x.size, x.lm.unwrap_or(7)) {
            prop_assert_eq!(got, *known);
        }
    }
    Ok(())
}

#[test]
fn fuzz_known_mtimes_cache() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    fuzz(
        "known mtimes: round trip, arbitrary and damaged segments",
        150,
        (known_entries(), vec(any::<u8>(), 0..200), edits()),
        |(entries, junk, e)| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.path().join(i.to_string());
            // What one run records, the next finds (in the listing's key
            // order), unless a later record of the same key replaced it.
            save_known(&path, &entries);
            let mut want: Vec<(&KnownEntry, Known)> = entries
                .iter()
                .enumerate()
                .filter(|(i, x)| !entries[i + 1..].iter().any(|y| y.key == x.key))
                .map(|(_, x)| {
                    let known = match x.mtime {
                        Some(ns) => Known::Mtime(ns),
                        None => Known::NoMetadata,
                    };
                    (x, known)
                })
                .collect();
            want.sort_by(|a, b| a.0.key.cmp(&b.0.key));
            let k = KnownMtimes::load(Some(path.clone()));
            for (x, known) in &want {
                let lm = x.lm.unwrap_or(7);
                prop_assert_eq!(k.lookup(&x.key, &x.etag, x.size, lm), Some(*known));
            }
            drop(k);
            if want.is_empty() {
                return Ok(());
            }
            let seg = crate::sync::known::segments::list(&path)[0].1.clone();
            let valid = std::fs::read(&seg).unwrap_or_default();
            check_known_file(
                &path,
                &mutate(&valid, &e, &["ferry-known-2\n", "\0\0\0\0"]),
                &want,
            )?;
            check_known_file(&path, &junk, &want)
        },
    );
}

// ---------------------------------------------------------------------------
// The mount journal

fn manifest_json() -> impl Strategy<Value = serde_json::Value> {
    (
        prop_oneof![
            4 => "(m/|)(a|b|\\.\\.|\\.|)(/(a|b|)){0,2}",
            1 => any::<String>(),
        ],
        prop_oneof![Just("ready"), Just("writing"), Just("gone")],
        prop::option::of(prop_oneof![nanos().prop_map(format_mtime), text(),]),
        size(),
        prop_oneof![4 => Just("mem://"), 1 => Just("http://elsewhere")],
        prop_oneof![4 => Just("bucket"), 1 => Just("other")],
    )
        .prop_map(|(key, state, mtime, size, endpoint, bucket)| {
            serde_json::json!({
                "format": crate::mount::staging::FORMAT,
                "version": crate::mount::staging::VERSION,
                "endpoint": endpoint,
                "bucket": bucket,
                "key": key,
                "state": state,
                "mtime": mtime,
                "size": size,
            })
        })
}

#[derive(Debug, Clone)]
struct JournalEntry {
    manifest: serde_json::Value,
    edits: Option<Vec<Edit>>,
    data: Option<Vec<u8>>,
}

/// A cache dir left by a crashed mount, scanned and recovered by the next:
/// every manifest is accounted for exactly once in the report.
fn check_journal(cache: &Path, entries: &[JournalEntry]) -> TestCaseResult {
    use crate::mount::fs::{MountConfig, MountFs};
    use crate::mount::staging::Journal;
    let _ = std::fs::remove_dir_all(cache);
    let journal = Journal::open(cache, "mem://", "bucket").unwrap();
    for (i, e) in entries.iter().enumerate() {
        let valid = serde_json::to_vec_pretty(&e.manifest).unwrap();
        let bytes = match &e.edits {
            Some(edits) => mutate(&valid, edits, JSON_TOKENS),
            None => valid,
        };
        let pending = journal.pending_dir();
        std::fs::write(pending.join(format!("{i:x}-0.json")), bytes).unwrap();
        if let Some(d) = &e.data {
            std::fs::write(pending.join(format!("{i:x}-0.data")), d).unwrap();
        }
    }
    let mut cfg = MountConfig::new("bucket", "m");
    cfg.transfer.endpoint_id = "mem://".into();
    cfg.transfer.checkpoint_dir = Some(cache.join("checkpoints"));
    let store = crate::store::memory::MemoryStore::with_bucket("bucket");
    let fs = MountFs::new(cfg, store, journal, Arc::new(|_: &str| {}));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(async {
        let report = fs.recover();
        fs.shutdown(Duration::from_secs(10)).await;
        report
    });
    let accounted = report.resumed.len()
        + report.set_aside.len()
        + report.foreign.len()
        + report.problems.len();
    prop_assert_eq!(accounted, entries.len(), "{:?}", report);
    Ok(())
}

#[test]
fn fuzz_mount_journal() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let entry = (
        manifest_json(),
        prop::option::of(edits()),
        prop::option::of(vec(any::<u8>(), 0..64)),
    )
        .prop_map(|(manifest, edits, data)| JournalEntry {
            manifest,
            edits,
            data,
        });
    fuzz(
        "mount journal: manifests left by a crashed mount",
        200,
        vec(entry, 1..4),
        |entries| check_journal(&cache, &entries),
    );
}

// ---------------------------------------------------------------------------
// Credentials files

const INI_TOKENS: &[&str] = &[
    "[",
    "]",
    "[default]",
    "[profile work]",
    "[ work ]",
    "=",
    "==",
    "#",
    ";",
    "\n",
    "\r\n",
    " ",
    "\t",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "AccessKeyId",
    "\u{feff}",
];

#[derive(Debug, Clone)]
struct IniCase {
    /// Sections before and after the one ferry reads; their lines never
    /// open a section nor assign anything.
    noise: Vec<(String, Vec<String>)>,
    section: String,
    id: String,
    secret: String,
    token: Option<String>,
    upper: bool,
    spaces: (String, String),
}

fn ini_case() -> impl Strategy<Value = IniCase> {
    let noise_line = "[^=\\[\n\r]{0,16}";
    (
        vec(("[a-z ]{1,8}", vec(noise_line, 0..3)), 0..3),
        "[a-z][a-z0-9-]{0,8}",
        "AKIA[A-Z0-9]{4,12}",
        // Secrets are base64: '=' and '/' included.
        "SECRET[A-Za-z0-9/+=]{8,24}",
        prop::option::of("[A-Za-z0-9/+=]{4,16}"),
        any::<bool>(),
        ("[ \t]{0,2}", "[ \t]{0,2}"),
    )
        .prop_map(
            |(noise, section, id, secret, token, upper, spaces)| IniCase {
                noise,
                section,
                id,
                secret,
                token,
                upper,
                spaces,
            },
        )
}

fn ini_text(c: &IniCase) -> String {
    let key = |k: &str| {
        if c.upper {
            k.to_ascii_uppercase()
        } else {
            k.to_string()
        }
    };
    let (a, b) = &c.spaces;
    let mut t = String::new();
    let half = c.noise.len() / 2;
    let noise = |t: &mut String, sections: &[(String, Vec<String>)]| {
        for (name, lines) in sections {
            t.push_str(&format!("[{name}]\n{}\n", lines.join("\n")));
        }
    };
    noise(&mut t, &c.noise[..half]);
    t.push_str(&format!("[{a}profile {}{b}]\n", c.section));
    t.push_str(&format!("{}{a}={b}{}\n", key("aws_access_key_id"), c.id));
    t.push_str("# a comment = not a key\n");
    t.push_str(&format!(
        "{}{a}={b}{}\n",
        key("aws_secret_access_key"),
        c.secret
    ));
    if let Some(tok) = &c.token {
        t.push_str(&format!("{a}{}={tok}{b}\n", key("aws_session_token")));
    }
    noise(&mut t, &c.noise[half..]);
    t
}

#[test]
fn fuzz_credentials_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials");
    let env: HashMap<&str, &str> = HashMap::new();
    fuzz(
        "credentials: generated, mutated and arbitrary files",
        1500,
        (ini_case(), edits(), any::<String>()),
        |(c, e, junk)| {
            let profile = Profile {
                credentials_file: Some(path.clone()),
                credentials_profile: Some(c.section.clone()),
                ..Default::default()
            };
            let text = ini_text(&c);
            rewrite(&path, &text);
            let creds = resolve_credentials(Dialect::S3, &profile, &env)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(&creds.access_key_id, &c.id);
            prop_assert_eq!(&creds.secret_access_key, &c.secret);
            prop_assert_eq!(&creds.session_token, &c.token);
            // Damaged or foreign files: whatever is found, a refusal never
            // quotes the file.
            for bytes in [mutate(text.as_bytes(), &e, INI_TOKENS), junk.into_bytes()] {
                rewrite(&path, &bytes);
                let _ = read_ini_section(&path, "default");
                if let Err(err) = resolve_credentials(Dialect::S3, &profile, &env) {
                    let msg = err.to_string();
                    prop_assert!(!msg.contains(&c.secret), "the secret is in: {msg}");
                    one_line("credentials error", &msg)?;
                }
            }
            Ok(())
        },
    );
}
