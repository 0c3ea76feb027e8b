//! `ferry mount` and `ferry unmount`.
//!
//! Without --foreground, mount starts itself again in the foreground as a
//! detached process (new session, output to <cache-dir>/mount.log) and
//! returns once the mount is up, so the usual `ferry mount … && cd …` works.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::args::{MountArgs, UnmountArgs};
use super::ls::parse_remote;
use super::setup::Setup;
use super::{CliError, Outcome};
use crate::mount::control;
use crate::mount::staging::Journal;
use crate::mount::{MountConfig, MountFs, ServeOptions};
use crate::store::dialect::Dialect;
use crate::store::ListRequest;
use crate::transfer::{MemoryBudget, Requested, TransferOptions, MIB};

/// One cache dir per mounted location by default, so two mounts never
/// share (and finish) each other's journal.
fn default_cache_dir(endpoint: &str, bucket: &str, prefix: &str) -> PathBuf {
    let id = hex::encode(&Sha256::digest(format!("{endpoint}\n{bucket}\n{prefix}"))[..6]);
    crate::config::dirs::cache_dir(&crate::config::ProcessEnv)
        .join("mounts")
        .join(format!("{bucket}-{id}"))
}

pub async fn mount(setup: &Setup, a: MountArgs) -> Result<Outcome, CliError> {
    let url = parse_remote(&a.url)?;
    let requested = Requested {
        bigfile_threshold: a.multipart_threshold,
        part_size: Some(a.part_size),
        parallel: a.parallel,
        checkpoint_dir: None,
    };
    // Checked before anything touches the network or the cache dir.
    TransferOptions::checked(requested.clone(), "", false)?;
    let object = super::object_args::resolve(&a.object, url.dialect).map_err(CliError::Usage)?;
    let h = setup.store_for(&url)?;
    let prefix = crate::mount::names::normalize_prefix(&url.key);
    let cache_dir = a
        .cache_dir
        .clone()
        .unwrap_or_else(|| default_cache_dir(&h.endpoint_id, &url.bucket, &prefix));
    let fsname = format!("ferry:{}", url.with_key(prefix.clone()));
    if !a.foreground {
        return detach(setup, &a, &cache_dir, &fsname);
    }
    let _lock = control::lock_cache_dir(&cache_dir).map_err(CliError::Usage)?;
    // Fail here, not on the first `ls`, if the bucket or credentials are wrong.
    h.store
        .list_objects(
            &url.bucket,
            &ListRequest {
                prefix: &prefix,
                max_keys: Some(1),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| CliError::Failed(format!("cannot list {fsname}: {e}")))?;

    let checkpoint_dir = a
        .checkpoint_dir
        .clone()
        .unwrap_or_else(|| cache_dir.join("checkpoints"));
    let journal = Journal::open(&cache_dir, &h.endpoint_id, &url.bucket)
        .map_err(|e| CliError::Failed(format!("{}: {e}", cache_dir.display())))?;
    let pending_dir = journal.pending_dir().to_path_buf();
    let mut cfg = MountConfig::new(&url.bucket, &prefix);
    cfg.read_only = a.read_only;
    // SAFETY: geteuid/getegid have no preconditions and cannot fail.
    cfg.uid = a.uid.unwrap_or_else(|| unsafe { libc::geteuid() });
    cfg.gid = a.gid.unwrap_or_else(|| unsafe { libc::getegid() });
    cfg.file_mode = a.file_mode;
    cfg.dir_mode = a.dir_mode;
    cfg.list_ttl = a.list_ttl;
    cfg.rename_limit = a.rename_limit;
    cfg.transfer = TransferOptions {
        memory: Some(MemoryBudget::new(
            (a.part_size * a.parallel as u64 * 4).max(64 * MIB),
        )),
        ..TransferOptions::checked(
            Requested {
                checkpoint_dir: Some(checkpoint_dir),
                ..requested
            },
            &h.endpoint_id,
            h.dialect == Dialect::Oss,
        )?
    };
    // As `cp` uploads: the checksum choice and the object options.
    cfg.transfer.checksum = h.checksum;
    cfg.transfer.content_type = object.content_type;
    cfg.transfer.metadata = object.metadata;
    cfg.transfer.object = object.object;
    let reporter = setup.reporter.clone();
    let notify: crate::mount::fs::Notify =
        Arc::new(move |m: &str| reporter.say(&format!("ferry: {m}")));
    let fs = MountFs::new(cfg, h.store.clone(), journal, notify.clone());
    let opts = ServeOptions {
        mountpoint: a.mountpoint.clone(),
        fsname,
        allow_other: a.allow_other,
        read_only: a.read_only,
        flush_timeout: a.flush_timeout,
        threads: 2,
        runtime_dir: crate::config::dirs::runtime_dir(&crate::config::ProcessEnv),
    };
    let report = crate::mount::serve(fs, opts, pending_dir, notify)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    Ok(if report.unflushed.is_empty() {
        Outcome::Success
    } else {
        Outcome::SomeFailed
    })
}

/// Runs this same command again with --foreground as a detached process
/// and waits until the mount is up (or the child fails).
fn detach(
    setup: &Setup,
    a: &MountArgs,
    cache_dir: &Path,
    fsname: &str,
) -> Result<Outcome, CliError> {
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| CliError::Failed(format!("{}: {e}", cache_dir.display())))?;
    let log_path = cache_dir.join("mount.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| CliError::Failed(format!("{}: {e}", log_path.display())))?;
    let start_len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Failed(format!("cannot find the ferry executable: {e}")))?;
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    args.push("--foreground".into());
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(|e| CliError::Failed(e.to_string()))?,
        )
        .stderr(log);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory of the
        // parent; it detaches the child from our terminal and its signals.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::Failed(format!("cannot start the mount process: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let log_tail = || {
        std::fs::read(&log_path)
            .map(|b| String::from_utf8_lossy(&b[(start_len as usize).min(b.len())..]).into_owned())
            .unwrap_or_default()
    };
    loop {
        if control::ferry_mounted(&a.mountpoint) {
            setup.reporter.say(&format!(
                "ferry: mounted {fsname} at {} (pid {}, log {}); unmount with `ferry unmount {}`",
                control::absolute(&a.mountpoint).display(),
                child.id(),
                log_path.display(),
                a.mountpoint.display()
            ));
            return Ok(Outcome::Success);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CliError::Failed(format!(
                "the mount process exited ({status}):\n{}",
                log_tail().trim_end()
            )));
        }
        if Instant::now() > deadline {
            return Err(CliError::Failed(format!(
                "the mount did not come up within 2 minutes (pid {}, log {})",
                child.id(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub async fn unmount(setup: &Setup, a: UnmountArgs) -> Result<Outcome, CliError> {
    let mp = control::absolute(&a.mountpoint);
    let files = control::state_files(
        &crate::config::dirs::runtime_dir(&crate::config::ProcessEnv),
        &mp,
    );
    let pid = control::read_pid(&files.pid);
    if control::mounted(&mp).is_none() {
        return Err(CliError::Failed(format!("{} is not mounted", mp.display())));
    }
    control::unmount(&mp, a.lazy).map_err(|e| {
        let hint = if e.contains("busy") && !a.lazy {
            " (files are open: close them, or use --lazy to detach now and upload them when closed)"
        } else {
            ""
        };
        CliError::Failed(format!("cannot unmount {}: {e}{hint}", mp.display()))
    })?;
    let Some(pid) = pid else {
        return Ok(Outcome::Success);
    };
    setup.reporter.say(&format!(
        "ferry: unmounted {}; waiting for the mount process (pid {pid}) to finish pending uploads",
        mp.display()
    ));
    let deadline = Instant::now() + a.timeout;
    while control::pid_alive(pid) {
        if Instant::now() > deadline {
            return Err(CliError::Failed(format!(
                "the mount process (pid {pid}) is still uploading after {}s; it keeps going in the background",
                a.timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match crate::mount::control::read_state_file(&files.status) {
        Ok(status) => {
            let _ = std::fs::remove_file(&files.status);
            let status = status.trim();
            if status.contains("could not") {
                setup.reporter.error(status);
                Ok(Outcome::SomeFailed)
            } else {
                setup.reporter.say(&format!("ferry: {status}"));
                Ok(Outcome::Success)
            }
        }
        Err(_) => Ok(Outcome::Success),
    }
}
