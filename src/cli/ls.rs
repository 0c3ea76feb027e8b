//! `ferry ls`: one level (with "directories") or everything under a prefix.

use super::escape::visible;
use time::macros::format_description;

use super::args::LsArgs;
use super::setup::Setup;
use super::{CliError, Outcome};
use crate::location::Location;
use futures::TryStreamExt;

use crate::store::{list_pages, ListEntry, ListRequest};
use crate::units::human;

pub fn parse_remote(url: &str) -> Result<crate::location::RemoteUrl, CliError> {
    match Location::parse(url)? {
        Location::Remote(r) => Ok(r),
        Location::Local(_) => Err(CliError::Usage(format!(
            "{url} is not an object URL; expected s3://BUCKET[/PREFIX] or oss://BUCKET[/PREFIX]"
        ))),
    }
}

pub fn format_time(t: time::OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

pub async fn run(setup: &Setup, a: LsArgs) -> Result<Outcome, CliError> {
    let r = parse_remote(&a.url)?;
    let h = setup.store_for(&r)?;
    if a.versions {
        return super::versions::ls(setup, &h, &r, &a).await;
    }
    let delimiter = (!a.recursive).then_some("/");
    let (mut count, mut total) = (0u64, 0u64);
    let print = |e: &ListEntry| {
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "key": e.key,
                    "size": e.size,
                    "last_modified": e.last_modified.unix_timestamp(),
                    "etag": e.etag,
                })
            );
        } else {
            let size = if a.bytes {
                e.size.to_string()
            } else {
                human(e.size)
            };
            println!(
                "{}  {:>10}  {}",
                format_time(e.last_modified),
                size,
                visible(&e.key)
            );
        }
    };
    let pages = list_pages(
        h.store.as_ref(),
        &r.bucket,
        ListRequest {
            prefix: &r.key,
            delimiter,
            ..Default::default()
        },
    );
    let mut pages = std::pin::pin!(pages);
    while let Some(page) = pages.try_next().await? {
        for p in &page.prefixes {
            if a.json {
                println!("{}", serde_json::json!({ "prefix": p }));
            } else {
                println!("{:>19}  {:>10}  {}", "", "DIR", visible(p));
            }
        }
        for e in &page.objects {
            print(e);
            count += 1;
            total += e.size;
        }
    }
    if !a.json {
        setup
            .reporter
            .say(&format!("{count} objects, {}", human(total)));
    }
    Ok(Outcome::Success)
}
