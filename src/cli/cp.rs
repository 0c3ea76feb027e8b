//! `ferry cp`: one file or object, or a tree with -r.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::StreamExt;

use super::args::CpArgs;
use super::setup::{Setup, StoreHandle};
use super::{CliError, Outcome};
use crate::location::{Location, RemoteUrl};
use crate::store::list_all_objects;
use crate::transfer::paths::{key_basename, safe_relative_path};
use crate::transfer::{download_file, upload_file, TransferError, TransferOptions};
use crate::units::human;

pub async fn run(setup: &Setup, a: CpArgs) -> Result<Outcome, CliError> {
    let src = Location::parse(&a.source)?;
    let dst = Location::parse(&a.destination)?;
    if a.jobs == 0 {
        return Err(CliError::Usage("--jobs must be at least 1".into()));
    }
    match (&src, &dst) {
        (Location::Local(p), Location::Remote(r)) => {
            let h = setup.store_for(r)?;
            let opts = setup.transfer_options(&a.transfer, &h)?;
            let meta = std::fs::metadata(p)
                .map_err(|e| CliError::Failed(format!("{}: {}", p.display(), io_reason(&e))))?;
            if meta.is_dir() {
                if !a.recursive {
                    return Err(CliError::Usage(format!(
                        "{} is a directory; use -r to copy it recursively",
                        p.display()
                    )));
                }
                upload_tree(setup, &h, &opts, p, r, a.jobs).await
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
                let ctx = setup.context(&h, setup.reporter.transfer(true));
                let out = upload_file(&ctx, &opts, p, &r.bucket, &key).await?;
                setup.reporter.say(&format!(
                    "uploaded {} -> {} ({}{}) in {:.1}s",
                    p.display(),
                    r.with_key(key),
                    human(out.bytes_sent),
                    if out.bytes_resumed > 0 {
                        format!(" sent, {} already on the server", human(out.bytes_resumed))
                    } else {
                        String::new()
                    },
                    started.elapsed().as_secs_f64()
                ));
                Ok(Outcome::Success)
            }
        }
        (Location::Remote(r), Location::Local(p)) => {
            let h = setup.store_for(r)?;
            let opts = setup.transfer_options(&a.transfer, &h)?;
            if a.recursive {
                return download_tree(setup, &h, &opts, r, p, a.jobs).await;
            }
            if r.key.is_empty() || r.key.ends_with('/') {
                return Err(CliError::Usage(format!(
                    "{r} names a prefix, not an object; use -r to copy everything under it"
                )));
            }
            let dest = if p.is_dir() || a.destination.ends_with('/') {
                p.join(key_basename(&r.key))
            } else {
                p.clone()
            };
            let started = Instant::now();
            let ctx = setup.context(&h, setup.reporter.transfer(true));
            let out = download_file(&ctx, &opts, &r.bucket, &r.key, &dest).await?;
            setup.reporter.say(&format!(
                "downloaded {r} -> {} ({}{}) in {:.1}s",
                dest.display(),
                human(out.bytes_received),
                if out.bytes_resumed > 0 {
                    format!(" received, {} already on disk", human(out.bytes_resumed))
                } else {
                    String::new()
                },
                started.elapsed().as_secs_f64()
            ));
            Ok(Outcome::Success)
        }
        (Location::Remote(s), Location::Remote(d)) => {
            if s.dialect != d.dialect {
                return Err(CliError::Usage(
                    "copying between s3:// and oss:// needs a local hop: download, then upload"
                        .into(),
                ));
            }
            if a.recursive {
                return Err(CliError::Usage(
                    "recursive server-side copy is not supported yet; copy objects one at a time"
                        .into(),
                ));
            }
            let h = setup.store_for(s)?;
            let key = if d.key.is_empty() || d.key.ends_with('/') {
                format!("{}{}", d.key, key_basename(&s.key))
            } else {
                d.key.clone()
            };
            h.store
                .copy_object(&s.bucket, &s.key, &d.bucket, &key, None)
                .await?;
            setup
                .reporter
                .say(&format!("copied {s} -> {}", d.with_key(key)));
            Ok(Outcome::Success)
        }
        (Location::Local(_), Location::Local(_)) => Err(CliError::Usage(
            "both locations are local; one side must be s3://BUCKET/KEY or oss://BUCKET/KEY".into(),
        )),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `dir` and `dir/` both mean "everything under dir/".
fn as_prefix(key: &str) -> String {
    if key.is_empty() || key.ends_with('/') {
        key.to_string()
    } else {
        format!("{key}/")
    }
}

#[derive(Default)]
struct Tally {
    files: AtomicU64,
    bytes: AtomicU64,
    resumed: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn report(&self, setup: &Setup, verb: &str, started: Instant) -> Outcome {
        let secs = started.elapsed().as_secs_f64();
        let bytes = self.bytes.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        setup.reporter.say(&format!(
            "{verb} {} files, {} in {secs:.1}s ({}/s){}{}",
            self.files.load(Ordering::Relaxed),
            human(bytes),
            human((bytes as f64 / secs.max(0.001)) as u64),
            match self.resumed.load(Ordering::Relaxed) {
                0 => String::new(),
                r => format!(", {} resumed", human(r)),
            },
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        ));
        if setup.cancel.is_cancelled() {
            Outcome::Interrupted
        } else if failed > 0 {
            Outcome::SomeFailed
        } else {
            Outcome::Success
        }
    }
}

fn local_files(root: &Path, setup: &Setup, tally: &Tally) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                setup.reporter.error(&format!(
                    "{}: {}",
                    e.path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    e.io_error().map(io_reason).unwrap_or_else(|| e.to_string())
                ));
                tally.failed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if ft.is_symlink() {
            setup.reporter.say(&format!(
                "ferry: skipping symbolic link {}",
                entry.path().display()
            ));
            continue;
        }
        if !ft.is_file() {
            setup.reporter.say(&format!(
                "ferry: skipping special file {}",
                entry.path().display()
            ));
            continue;
        }
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let key: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        out.push((entry.path().to_path_buf(), key.join("/")));
    }
    out
}

async fn upload_tree(
    setup: &Setup,
    h: &StoreHandle,
    opts: &TransferOptions,
    root: &Path,
    dst: &RemoteUrl,
    jobs: usize,
) -> Result<Outcome, CliError> {
    let started = Instant::now();
    let tally = Tally::default();
    let files = local_files(root, setup, &tally);
    let prefix = as_prefix(&dst.key);
    let results = futures::stream::iter(files)
        .map(|(path, rel)| {
            let key = format!("{prefix}{rel}");
            let ctx = setup.context(h, setup.reporter.transfer(true));
            let tally = &tally;
            async move {
                if setup.cancel.is_cancelled() {
                    return;
                }
                match upload_file(&ctx, opts, &path, &dst.bucket, &key).await {
                    Ok(o) => {
                        tally.files.fetch_add(1, Ordering::Relaxed);
                        tally.bytes.fetch_add(o.bytes_sent, Ordering::Relaxed);
                        tally.resumed.fetch_add(o.bytes_resumed, Ordering::Relaxed);
                    }
                    Err(TransferError::Interrupted) => {}
                    Err(e) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        setup
                            .reporter
                            .error(&format!("upload {}: {e}", path.display()));
                    }
                }
            }
        })
        .buffer_unordered(jobs);
    results.collect::<Vec<()>>().await;
    Ok(tally.report(setup, "uploaded", started))
}

async fn download_tree(
    setup: &Setup,
    h: &StoreHandle,
    opts: &TransferOptions,
    src: &RemoteUrl,
    root: &Path,
    jobs: usize,
) -> Result<Outcome, CliError> {
    let started = Instant::now();
    let tally = Tally::default();
    let prefix = as_prefix(&src.key);
    let objects = list_all_objects(h.store.as_ref(), &src.bucket, &prefix).await?;
    std::fs::create_dir_all(root).map_err(|e| {
        CliError::Failed(format!(
            "{}: cannot create directory: {}",
            root.display(),
            io_reason(&e)
        ))
    })?;
    let results = futures::stream::iter(objects)
        .map(|obj| {
            let ctx = setup.context(h, setup.reporter.transfer(true));
            let tally = &tally;
            let prefix = &prefix;
            async move {
                if setup.cancel.is_cancelled() {
                    return;
                }
                let rel = &obj.key[prefix.len()..];
                if rel.ends_with('/') && obj.size == 0 {
                    // A directory marker: recreate the directory.
                    if let Ok(p) = safe_relative_path(rel.trim_end_matches('/')) {
                        let _ = std::fs::create_dir_all(root.join(p));
                    }
                    return;
                }
                let dest = match safe_relative_path(rel) {
                    Ok(p) => root.join(p),
                    Err(why) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        setup.reporter.error(&format!(
                            "refusing to download {}: key would be written outside {} ({why})",
                            src.with_key(obj.key.clone()),
                            root.display()
                        ));
                        return;
                    }
                };
                match download_file(&ctx, opts, &src.bucket, &obj.key, &dest).await {
                    Ok(o) => {
                        tally.files.fetch_add(1, Ordering::Relaxed);
                        tally.bytes.fetch_add(o.bytes_received, Ordering::Relaxed);
                        tally.resumed.fetch_add(o.bytes_resumed, Ordering::Relaxed);
                    }
                    Err(TransferError::Interrupted) => {}
                    Err(e) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        setup
                            .reporter
                            .error(&format!("download {}: {e}", src.with_key(obj.key.clone())));
                    }
                }
            }
        })
        .buffer_unordered(jobs);
    results.collect::<Vec<()>>().await;
    Ok(tally.report(setup, "downloaded", started))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_get_a_slash() {
        assert_eq!(as_prefix(""), "");
        assert_eq!(as_prefix("a"), "a/");
        assert_eq!(as_prefix("a/"), "a/");
    }
}
