//! Standard input and output: `ferry cp - URL`, `ferry cp URL -` and
//! `ferry cat URL…`.

use std::time::Instant;

use super::args::{CatArgs, CpArgs};
use super::ls::parse_remote;
use super::setup::Setup;
use super::{CliError, Outcome};
use crate::transfer::stream::{download_stream, upload_stream, Written};
use crate::transfer::{MemoryBudget, TransferError, MIB};
use crate::units::human;

/// Whether a `cp` argument names standard input or output.
pub fn is_dash(arg: &std::ffi::OsStr) -> bool {
    arg == "-"
}

/// `cp - URL` and `cp URL -`.
pub async fn cp(setup: &Setup, a: &CpArgs) -> Result<Outcome, CliError> {
    if a.recursive || a.update || a.delete || a.watch {
        return Err(CliError::Usage(
            "-r, -u, --delete and --watch do not apply to standard input or output".into(),
        ));
    }
    let (src, dst) = (is_dash(&a.source), is_dash(&a.destination));
    if src && dst {
        return Err(CliError::Usage(
            "both sides are '-'; one must be s3://BUCKET/KEY or oss://BUCKET/KEY".into(),
        ));
    }
    if src && a.version_id.is_some() {
        return Err(CliError::Usage(
            "--version-id names a version of the source object; standard input has none".into(),
        ));
    }
    if src {
        let url = a.destination.to_string_lossy();
        let r = parse_remote(&url)?;
        if r.key.is_empty() || r.key.ends_with('/') {
            return Err(CliError::Usage(format!(
                "{r}: name the object standard input goes to (s3://BUCKET/KEY)"
            )));
        }
        let h = setup.store_for(&r)?;
        let mut opts = setup.transfer_options(&a.transfer, &h)?;
        opts.memory = Some(MemoryBudget::new(
            a.memory_budget.unwrap_or(256 * MIB).max(MIB),
        ));
        let started = Instant::now();
        let ctx = setup.context(&h, setup.reporter.transfer(true));
        let out = upload_stream(&ctx, &opts, tokio::io::stdin(), &r.bucket, &r.key).await?;
        setup.reporter.say(&format!(
            "uploaded standard input -> {r} ({}{}) in {:.1}s",
            human(out.size),
            if out.multipart {
                format!(", {} parts", out.parts_total)
            } else {
                String::new()
            },
            started.elapsed().as_secs_f64()
        ));
        return Ok(Outcome::Success);
    }
    let url = a.source.to_string_lossy();
    let r = parse_remote(&url)?;
    let h = setup.store_for(&r)?;
    let opts = setup.transfer_options(&a.transfer, &h)?;
    let ctx = setup.context(&h, setup.reporter.transfer(false));
    write_object(&ctx, &opts, &r, a.version_id.as_deref())
        .await
        .map_err(|e| super::versions::versioned(&r, a.version_id.as_deref(), e))?;
    Ok(Outcome::Success)
}

async fn write_object(
    ctx: &crate::transfer::Context,
    opts: &crate::transfer::TransferOptions,
    r: &crate::location::RemoteUrl,
    version_id: Option<&str>,
) -> Result<Written, TransferError> {
    if r.key.is_empty() || r.key.ends_with('/') {
        return Err(TransferError::Integrity(format!(
            "{r} names a prefix, not an object"
        )));
    }
    download_stream(
        ctx,
        opts,
        &r.bucket,
        &r.key,
        version_id,
        tokio::io::stdout(),
    )
    .await
}

/// `ferry cat URL…`: each object in turn; one that fails is reported and
/// the others still written; a closed pipe ends quietly.
pub async fn cat(setup: &Setup, a: CatArgs) -> Result<Outcome, CliError> {
    if a.version_id.is_some() && a.urls.len() > 1 {
        return Err(CliError::Usage(
            "--version-id names a version of one object; give one URL".into(),
        ));
    }
    let mut failed = false;
    for url in &a.urls {
        let r = parse_remote(url)?;
        let h = setup.store_for(&r)?;
        let opts = setup.transfer_options(&a.transfer, &h)?;
        let ctx = setup.context(&h, setup.reporter.transfer(false));
        match write_object(&ctx, &opts, &r, a.version_id.as_deref()).await {
            Ok(Written::All(_)) => {}
            Ok(Written::Closed(_)) => return Ok(Outcome::Success),
            Err(TransferError::Interrupted) => return Err(CliError::Interrupted),
            Err(e) => {
                setup
                    .reporter
                    .error(&super::versions::versioned(&r, a.version_id.as_deref(), e).to_string());
                failed = true;
            }
        }
    }
    Ok(if failed {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    })
}
