//! `ferry cp`: one file or object, or a tree with -r.

use std::time::Instant;

use super::args::CpArgs;
use super::setup::Setup;
use super::tree::{run_tree, Tree, TreeSpec};
use super::versions::{self, versioned};
use super::{CliError, Outcome};
use crate::location::Location;
use crate::store::copy_version_any_size;
use crate::sync::one::{download_skip, upload_skip};
use crate::transfer::download::{download_pinned, file_target};
use crate::transfer::paths::key_basename;
use crate::transfer::Target;
use crate::transfer::{check_jobs, upload_file};
use crate::units::human;

pub async fn run(setup: &Setup, a: CpArgs) -> Result<Outcome, CliError> {
    if super::stream::is_dash(&a.source) || super::stream::is_dash(&a.destination) {
        return super::stream::cp(setup, &a).await;
    }
    let src = Location::parse_os(&a.source)?;
    let dst = Location::parse_os(&a.destination)?;
    check_jobs(a.jobs)?;
    let between = matches!((&src, &dst), (Location::Remote(_), Location::Remote(_)));
    if a.version_id.is_some() && !matches!(src, Location::Remote(_)) {
        return Err(CliError::Usage(
            "--version-id names a version of the source object; the source here is a local path"
                .into(),
        ));
    }
    let version = a.version_id.as_deref();
    if !between && (a.source_endpoint.is_some() || a.source_profile.is_some()) {
        return Err(CliError::Usage(
            "--source-endpoint and --source-profile apply to copies between two URLs".into(),
        ));
    }
    match (&src, &dst) {
        (Location::Local(p), Location::Remote(r)) => {
            let h = setup.store_for(r)?;
            let opts = setup.transfer_options(&a.transfer, &h)?;
            let meta = std::fs::metadata(p).map_err(|e| {
                let line = format!("{}: {}", p.display(), io_reason(&e));
                // A tree copy from a missing root is a usage error (an
                // unplugged drive, a typo), never an empty tree.
                if a.recursive {
                    CliError::Usage(line)
                } else {
                    CliError::Failed(line)
                }
            })?;
            if meta.is_dir() {
                if !a.recursive {
                    return Err(CliError::Usage(format!(
                        "{} is a directory; use -r to copy it recursively",
                        p.display()
                    )));
                }
                run_tree(
                    setup,
                    &h,
                    opts,
                    &TreeSpec::from_cp(&a),
                    Tree::Up { root: p, dst: r },
                )
                .await
            } else {
                let key = if r.key.is_empty() || r.key.ends_with('/') {
                    let name = p.file_name().ok_or_else(|| {
                        CliError::Usage(format!(
                            "{}: cannot name an object after this path",
                            p.display()
                        ))
                    })?;
                    format!("{}{}", r.key, name.to_string_lossy())
                } else {
                    r.key.clone()
                };
                let started = Instant::now();
                if a.update {
                    if let Some(reason) =
                        upload_skip(h.store.as_ref(), &r.bucket, &key, &meta).await?
                    {
                        setup.reporter.say(&format!(
                            "skipped {} ({})",
                            p.display(),
                            reason.describe()
                        ));
                        return Ok(Outcome::Success);
                    }
                }
                let ctx = setup.context(&h, setup.reporter.transfer(true));
                let out = upload_file(&ctx, &opts, p, &r.bucket, &key).await?;
                let what = format!("uploaded {} -> {}", p.display(), r.with_key(key));
                done_line(
                    setup,
                    &what,
                    out.bytes_sent,
                    out.bytes_resumed,
                    "on the server",
                    started,
                );
                Ok(Outcome::Success)
            }
        }
        (Location::Remote(r), Location::Local(p)) => {
            let h = setup.store_for(r)?;
            let opts = setup.transfer_options(&a.transfer, &h)?;
            if a.recursive {
                return run_tree(
                    setup,
                    &h,
                    opts,
                    &TreeSpec::from_cp(&a),
                    Tree::Down { src: r, root: p },
                )
                .await;
            }
            if r.key.is_empty() || r.key.ends_with('/') {
                return Err(CliError::Usage(format!(
                    "{r} names a prefix, not an object; use -r to copy everything under it"
                )));
            }
            let dest = if p.is_dir() || a.destination.as_encoded_bytes().ends_with(b"/") {
                p.join(key_basename(&r.key))
            } else {
                p.clone()
            };
            let started = Instant::now();
            let meta = versions::head(&h, r, version).await?;
            if a.update {
                if let Some(reason) = download_skip(&meta, &dest) {
                    setup
                        .reporter
                        .say(&format!("skipped {r} ({})", reason.describe()));
                    return Ok(Outcome::Success);
                }
            }
            let ctx = setup.context(&h, setup.reporter.transfer(true));
            let (root, name) = file_target(&dest)?;
            let target = Target {
                dest: &root,
                rel: &name,
            };
            let out = download_pinned(&ctx, &opts, &r.bucket, &r.key, version, target, meta)
                .await
                .map_err(|e| versioned(r, version, e))?;
            let what = format!(
                "downloaded {}{} -> {}",
                r,
                of_version(version),
                dest.display()
            );
            done_line(
                setup,
                &what,
                out.bytes_received,
                out.bytes_resumed,
                "on disk",
                started,
            );
            Ok(Outcome::Success)
        }
        (Location::Remote(s), Location::Remote(d)) => {
            let source_setup =
                setup.for_source(a.source_endpoint.clone(), a.source_profile.clone());
            let sh = source_setup.as_ref().unwrap_or(setup).store_for(s)?;
            let dh = setup.store_for(d)?;
            if a.recursive {
                let opts = setup.transfer_options(&a.transfer, &dh)?;
                let tree = Tree::Between {
                    src: s,
                    dst: d,
                    src_store: &sh,
                };
                return run_tree(setup, &dh, opts, &TreeSpec::from_cp(&a), tree).await;
            }
            if s.key.is_empty() || s.key.ends_with('/') {
                return Err(CliError::Usage(format!(
                    "{s} names a prefix, not an object; use -r to copy everything under it"
                )));
            }
            let key = if d.key.is_empty() || d.key.ends_with('/') {
                format!("{}{}", d.key, key_basename(&s.key))
            } else {
                d.key.clone()
            };
            if !std::sync::Arc::ptr_eq(&sh.store, &dh.store) {
                let opts = setup.transfer_options(&a.transfer, &dh)?;
                let started = Instant::now();
                let src = versions::head(&sh, s, version).await?;
                let size = src.size;
                let put = crate::sync::between::carried(&src, &opts.object, s.dialect == d.dialect);
                let from = setup.context(&sh, std::sync::Arc::new(crate::transfer::NoProgress));
                let to = setup.context(&dh, setup.reporter.transfer(true));
                let ends = crate::transfer::stream::CopyEnds {
                    from: &from,
                    to: &to,
                    src_bucket: &s.bucket,
                    src,
                    version_id: version,
                    bucket: &d.bucket,
                    key: &key,
                };
                crate::transfer::stream::copy_stream(ends, &opts, put)
                    .await
                    .map_err(|e| versioned(s, version, e))?;
                let what = format!(
                    "copied {s}{} -> {} through memory",
                    of_version(version),
                    d.with_key(key)
                );
                done_line(setup, &what, size, 0, "", started);
                return Ok(Outcome::Success);
            }
            let h = dh;
            // Past the single-copy limit (1 GiB on OSS, 5 GiB on S3) this
            // becomes a multipart copy.
            let limits = h.store.copy_limits();
            copy_version_any_size(
                h.store.as_ref(),
                &s.bucket,
                &s.key,
                version,
                &d.bucket,
                &key,
                None,
                &limits,
            )
            .await
            .map_err(|e| match version {
                Some(v) => versions::version_error(s, v, e),
                None => CliError::from(e),
            })?;
            setup.reporter.say(&format!(
                "copied {s}{} -> {}",
                of_version(version),
                d.with_key(key)
            ));
            Ok(Outcome::Success)
        }
        (Location::Local(_), Location::Local(_)) => Err(CliError::Usage(
            "both locations are local; one side must be s3://BUCKET/KEY or oss://BUCKET/KEY".into(),
        )),
    }
}

/// "uploaded a -> b (5.0 MiB sent, 3.0 MiB already on the server) in 1.2s"
fn done_line(setup: &Setup, what: &str, moved: u64, resumed: u64, already: &str, started: Instant) {
    let extra = if resumed > 0 {
        format!(" moved, {} already {already}", human(resumed))
    } else {
        String::new()
    };
    setup.reporter.say(&format!(
        "{what} ({}{extra}) in {:.1}s",
        human(moved),
        started.elapsed().as_secs_f64()
    ));
}

/// " (version ID)" after a URL when a version was asked for.
fn of_version(version: Option<&str>) -> String {
    version
        .map(|v| format!(" (version {v})"))
        .unwrap_or_default()
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
