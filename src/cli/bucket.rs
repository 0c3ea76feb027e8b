//! `ferry mb` / `ferry rb`.

use super::args::BucketArgs;
use super::ls::parse_remote;
use super::setup::Setup;
use super::{CliError, Outcome};

fn bucket_only(url: &str) -> Result<crate::location::RemoteUrl, CliError> {
    let r = parse_remote(url)?;
    if !r.key.is_empty() {
        return Err(CliError::Usage(format!(
            "{url}: give only the bucket (s3://BUCKET), not a key"
        )));
    }
    Ok(r)
}

pub async fn make(setup: &Setup, a: BucketArgs) -> Result<Outcome, CliError> {
    let r = bucket_only(&a.url)?;
    let h = setup.store_for(&r)?;
    h.store.create_bucket(&r.bucket).await?;
    setup.reporter.say(&format!("made bucket {}", r.bucket));
    Ok(Outcome::Success)
}

pub async fn remove(setup: &Setup, a: BucketArgs) -> Result<Outcome, CliError> {
    let r = bucket_only(&a.url)?;
    let h = setup.store_for(&r)?;
    h.store.delete_bucket(&r.bucket).await?;
    setup.reporter.say(&format!("removed bucket {}", r.bucket));
    Ok(Outcome::Success)
}
