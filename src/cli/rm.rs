//! `ferry rm`: one object, or everything under a prefix (batched deletes).

use super::args::RmArgs;
use super::ls::parse_remote;
use super::setup::Setup;
use super::{CliError, Outcome};
use crate::store::list_all_objects;

pub async fn run(setup: &Setup, a: RmArgs) -> Result<Outcome, CliError> {
    let r = parse_remote(&a.url)?;
    let h = setup.store_for(&r)?;
    if !a.recursive {
        if r.key.is_empty() {
            return Err(CliError::Usage(format!(
                "{r} names a bucket; use -r to delete every object in it, or rb to remove the bucket"
            )));
        }
        // DELETE succeeds on missing keys; a typo deserves to be told.
        h.store.head_object(&r.bucket, &r.key).await?;
        h.store.delete_object(&r.bucket, &r.key).await?;
        setup.reporter.say(&format!("deleted {r}"));
        return Ok(Outcome::Success);
    }
    let objects = list_all_objects(h.store.as_ref(), &r.bucket, &r.key).await?;
    let keys: Vec<String> = objects.into_iter().map(|o| o.key).collect();
    let mut failed = 0;
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
    setup.reporter.say(&format!(
        "deleted {} objects under {r}",
        keys.len() - failed
    ));
    Ok(if failed > 0 {
        Outcome::SomeFailed
    } else {
        Outcome::Success
    })
}
