//! One mount's life: clean up a mount left by a killed process, restart
//! the uploads its journal holds, mount, serve until unmounted or signalled
//! (SIGTERM, SIGINT), then flush pending uploads within a deadline and say
//! what, if anything, could not be flushed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{MountOption, SessionACL};

use super::control::{self, PidFile};
use super::fs::{MountFs, Notify, RecoveryReport, ShutdownReport};
use super::fuse::FuseAdapter;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub mountpoint: PathBuf,
    /// Shown by `mount` and `df`: "ferry:s3://bucket/prefix".
    pub fsname: String,
    pub allow_other: bool,
    pub read_only: bool,
    /// How long unmount waits for open files and pending uploads.
    pub flush_timeout: Duration,
    /// Threads reading kernel requests (the work itself runs on tokio).
    pub threads: usize,
    /// Where the pid and status files go (see [`control::state_files`]).
    pub runtime_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot mount at {path}: {source}")]
    Mount {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn report_recovery(r: &RecoveryReport, notify: &Notify) {
    if !r.resumed.is_empty() {
        let list: Vec<String> = r
            .resumed
            .iter()
            .map(|(k, s)| format!("{k} ({})", crate::units::human(*s)))
            .collect();
        notify(&format!(
            "finishing {} upload(s) left pending by an earlier mount (resuming from the parts already on the server): {}",
            r.resumed.len(),
            list.join(", ")
        ));
    }
    for (key, path) in &r.set_aside {
        notify(&format!(
            "{key} was still being written when the earlier mount stopped; it was not uploaded. Its data is kept in {}",
            path.display()
        ));
    }
    for f in &r.foreign {
        notify(&format!(
            "the cache dir also holds a pending upload for {f}; mount that bucket with this cache dir to finish it"
        ));
    }
    for p in &r.problems {
        notify(p);
    }
}

fn describe_shutdown(r: &ShutdownReport, pending_dir: &std::path::Path) -> String {
    if r.unflushed.is_empty() {
        "unmounted; every upload finished".to_string()
    } else {
        format!(
            "unmounted, but {} file(s) could not be uploaded in time: {}. Their data is kept in {}; the next `ferry mount` with this cache dir uploads them",
            r.unflushed.len(),
            r.unflushed.join(", "),
            pending_dir.display()
        )
    }
}

/// Mounts and serves until unmounted. Returns what could not be flushed.
pub async fn serve(
    fs: Arc<MountFs>,
    opts: ServeOptions,
    pending_dir: PathBuf,
    notify: Notify,
) -> Result<ShutdownReport, MountError> {
    let mp = control::absolute(&opts.mountpoint);
    let shown = mp.display().to_string();
    if control::is_stale(&mp) {
        notify(&format!(
            "{shown} is a dead mount left by a killed process; unmounting it first"
        ));
        control::unmount(&mp, true).map_err(MountError::Setup)?;
    }
    match std::fs::metadata(&mp) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(MountError::Setup(format!("{shown} is not a directory"))),
        Err(e) => return Err(MountError::Setup(format!("{shown}: {e}"))),
    }
    if control::mounted(&mp).is_some_and(|m| m.fs_type.starts_with("fuse")) {
        return Err(MountError::Setup(format!(
            "{shown} is already a FUSE mount; unmount it first (ferry unmount {shown})"
        )));
    }
    control::prepare_state_dir(&opts.runtime_dir).map_err(|e| MountError::Setup(e.to_string()))?;

    // Pending files are attached before the first request is served, so
    // they are visible (with their new content) from the start.
    let recovery = fs.recover();
    report_recovery(&recovery, &notify);

    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName(opts.fsname.clone()),
        MountOption::Subtype("ferry".into()),
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
        MountOption::NoDev,
        MountOption::NoSuid,
        if opts.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
    ];
    config.acl = if opts.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(opts.threads.max(1));
    config.clone_fd = opts.threads > 1;
    let adapter = FuseAdapter::new(fs.clone(), tokio::runtime::Handle::current());
    let mp2 = mp.clone();
    let mut session =
        tokio::task::spawn_blocking(move || fuser::Session::new(adapter, &mp2, &config))
            .await
            .expect("mount task panicked")
            .map_err(|source| MountError::Mount {
                path: shown.clone(),
                source,
            })?;
    let mut unmounter = session.unmount_callable();
    let files = control::state_files(&opts.runtime_dir, &mp);
    let _ = std::fs::remove_file(&files.status);
    let _pid = match PidFile::write(&files.pid, std::process::id(), &mp) {
        Ok(p) => Some(p),
        Err(e) => {
            notify(&format!(
                "cannot write the pid file {}: {e}; `ferry unmount` will not wait for this mount's uploads",
                files.pid.display()
            ));
            None
        }
    };
    notify(&format!("mounted {} at {shown}", opts.fsname));

    let mut run = tokio::task::spawn_blocking(move || session.run());
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| MountError::Setup(e.to_string()))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| MountError::Setup(e.to_string()))?;
    let deadline;
    let ended = tokio::select! {
        r = &mut run => Some(r),
        _ = term.recv() => None,
        _ = int.recv() => None,
    };
    match ended {
        Some(r) => {
            deadline = Instant::now() + opts.flush_timeout;
            if let Ok(Err(e)) = r {
                tracing::warn!("FUSE session ended with an error: {e}");
            }
        }
        None => {
            deadline = Instant::now() + opts.flush_timeout;
            notify(&format!(
                "unmounting {shown}; pending uploads get up to {}s",
                opts.flush_timeout.as_secs()
            ));
            let plain = tokio::task::spawn_blocking(move || unmounter.unmount())
                .await
                .expect("unmount task panicked");
            if plain.is_err() {
                notify(&format!(
                    "{shown} is busy: detaching it; files still open are uploaded when closed"
                ));
                if let Err(e) = control::unmount(&mp, true) {
                    notify(&format!("cannot detach {shown}: {e}"));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, &mut run).await.is_err() {
                notify("files were still open at the deadline; their changes were not uploaded");
            }
        }
    }
    let report = fs
        .shutdown(deadline.saturating_duration_since(Instant::now()))
        .await;
    let msg = describe_shutdown(&report, &pending_dir);
    notify(&msg);
    if let Err(e) = control::write_state_file(&files.status, &format!("{msg}\n")) {
        tracing::warn!(
            "cannot write the status file {}: {e}",
            files.status.display()
        );
    }
    Ok(report)
}
