//! `ferry stat`: what HEAD says about one object.

use super::args::StatArgs;
use super::escape::visible;
use super::ls::{format_time, parse_remote};
use super::setup::Setup;
use super::{CliError, Outcome};
use crate::mtime::format_mtime;
use crate::transfer::download::stored_mtime;

pub async fn run(setup: &Setup, a: StatArgs) -> Result<Outcome, CliError> {
    let r = parse_remote(&a.url)?;
    let h = setup.store_for(&r)?;
    let m = h.store.head_object(&r.bucket, &r.key).await?;
    let mtime = stored_mtime(&m);
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
                "metadata": m.metadata,
            })
        );
    } else {
        println!("url:           {}", visible(&r.to_string()));
        println!("size:          {}", m.size);
        println!("etag:          {}", visible(&m.etag));
        println!("last-modified: {}", format_time(m.last_modified));
        println!("mtime:         {}", format_mtime(mtime));
        if let Some(c) = m.crc64 {
            println!("crc64:         {c}");
        }
        for (k, v) in &m.metadata {
            println!("meta {}: {}", visible(k), visible(v));
        }
    }
    Ok(Outcome::Success)
}
