//! `ferry rm`: one object, or everything under a prefix (batched deletes).

use super::args::RmArgs;
use super::ls::parse_remote;
use super::setup::Setup;
use super::{CliError, Outcome};
use futures::TryStreamExt;

use crate::store::{list_pages, ListRequest};

pub async fn run(setup: &Setup, a: RmArgs) -> Result<Outcome, CliError> {
    let r = parse_remote(&a.url)?;
    let h = setup.store_for(&r)?;
    if a.versions || a.version_id.is_some() {
        return super::versions::rm(setup, &h, &r, &a).await;
    }
    if !a.recursive {
        if r.key.is_empty() {
            return Err(CliError::Usage(format!(
                "{r} names a bucket; use -r to delete every object in it, or rb to remove the bucket"
            )));
        }
        // DELETE succeeds on missing keys; a typo deserves to be told.
        h.store.head_object(&r.bucket, &r.key).await?;
        if a.dry_run {
            println!("would delete {}", super::escape::visible(&r.to_string()));
            return Ok(Outcome::Success);
        }
        h.store.delete_object(&r.bucket, &r.key).await?;
        setup.reporter.say(&format!("deleted {r}"));
        return Ok(Outcome::Success);
    }
    // Page by page: each listed page (at most 1,000 keys) is one batch
    // delete, so a prefix of any size holds one page in memory. Deleting
    // what was listed does not disturb the continuation token, which
    // points past the last key listed.
    let pages = list_pages(
        h.store.as_ref(),
        &r.bucket,
        ListRequest {
            prefix: &r.key,
            ..Default::default()
        },
    );
    let mut pages = std::pin::pin!(pages);
    let (mut listed, mut failed) = (0usize, 0usize);
    while let Some(page) = pages.try_next().await? {
        let keys: Vec<String> = page.objects.into_iter().map(|o| o.key).collect();
        listed += keys.len();
        if a.dry_run {
            for k in &keys {
                println!(
                    "would delete {}",
                    super::escape::visible(&r.with_key(k.as_str()).to_string())
                );
            }
            continue;
        }
        // A page is at most 1,000 keys on S3; a store giving more still
        // gets batches DeleteObjects accepts.
        for chunk in keys.chunks(1000) {
            for f in h.store.delete_objects(&r.bucket, chunk).await? {
                failed += 1;
                setup.reporter.error(&format!(
                    "delete {}: {}: {}",
                    r.with_key(f.key),
                    f.code,
                    f.message
                ));
            }
        }
    }
    let verb = if a.dry_run { "would delete" } else { "deleted" };
    setup
        .reporter
        .say(&format!("{verb} {} objects under {r}", listed - failed));
    Ok(if failed > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    })
}
