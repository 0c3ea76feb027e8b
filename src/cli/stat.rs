//! `ferry stat`: what HEAD says about one object.

use super::args::StatArgs;
use super::escape::visible;
use super::ls::{format_time, parse_remote};
use super::setup::Setup;
use super::{CliError, Outcome};
use crate::checksum::ChecksumType;
use crate::mtime::format_mtime;
use crate::transfer::download::stored_mtime;
use crate::transfer::verify::Check;

/// `--bigfile-threshold`'s default: objects below it arrive in one GET.
const DEFAULT_BIGFILE_THRESHOLD: u64 = 100 << 20;

pub async fn run(setup: &Setup, a: StatArgs) -> Result<Outcome, CliError> {
    let r = parse_remote(&a.url)?;
    let h = setup.store_for(&r)?;
    let m = super::versions::head(&h, &r, a.version_id.as_deref()).await?;
    let mtime = stored_mtime(&m);
    // What `ferry cp` checks this object by; an MD5 ETag only on a single
    // GET (below the default --bigfile-threshold).
    let check = Check::choose(&m, m.size < DEFAULT_BIGFILE_THRESHOLD).describe();
    let checksum = m.checksum.as_ref().map(|c| {
        format!(
            "{} {}{}",
            c.checksum.algorithm,
            c.display_value(),
            match c.kind {
                ChecksumType::FullObject => " (full object)",
                ChecksumType::Composite { .. } => " (composite)",
            }
        )
    });
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "url": r.to_string(),
                "size": m.size,
                "etag": m.etag,
                "last_modified": m.last_modified.unix_timestamp(),
                "mtime": format_mtime(mtime),
                "crc64": m.crc64,
                "checksum": checksum,
                "download_check": check,
                "metadata": m.metadata,
                "version_id": m.version_id,
            })
        );
    } else {
        println!("url:           {}", visible(&r.to_string()));
        println!("size:          {}", m.size);
        println!("etag:          {}", visible(&m.etag));
        println!("last-modified: {}", format_time(m.last_modified));
        println!("mtime:         {}", format_mtime(mtime));
        if let Some(v) = &m.version_id {
            println!("version-id:    {}", visible(v));
        }
        if let Some(c) = m.crc64 {
            println!("crc64:         {c}");
        }
        if let Some(c) = &checksum {
            println!("checksum:      {}", visible(c));
        }
        println!("download check: {check}");
        for (k, v) in &m.metadata {
            println!("meta {}: {}", visible(k), visible(v));
        }
    }
    Ok(Outcome::Success)
}
