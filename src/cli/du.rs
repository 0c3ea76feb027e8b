//! `ferry du`: sizes and counts under a prefix, in total or per
//! "directory" down to `--depth`, from one flat listing.

use std::collections::BTreeMap;

use futures::TryStreamExt;

use super::args::DuArgs;
use super::escape::visible;
use super::ls::parse_remote;
use super::setup::Setup;
use super::{CliError, Outcome};
use crate::store::{list_pages, ListRequest};
use crate::units::human;

/// What lies under one group.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub objects: u64,
    pub bytes: u64,
}

/// The group a key (relative to the prefix) counts in: its first `depth`
/// segments ending in `/`, or `""` (the prefix itself) for a key that
/// lies no deeper. Pure.
pub fn group(rel: &str, depth: usize) -> &str {
    if depth == 0 {
        return "";
    }
    let mut end = 0;
    for _ in 0..depth {
        match rel[end..].find('/') {
            Some(i) => end += i + 1,
            None => break,
        }
    }
    &rel[..end]
}

pub async fn run(setup: &Setup, a: DuArgs) -> Result<Outcome, CliError> {
    let r = parse_remote(&a.url)?;
    let h = setup.store_for(&r)?;
    let mut groups: BTreeMap<String, Usage> = BTreeMap::new();
    let mut total = Usage::default();
    let pages = list_pages(
        h.store.as_ref(),
        &r.bucket,
        ListRequest {
            prefix: &r.key,
            ..Default::default()
        },
    );
    let mut pages = std::pin::pin!(pages);
    while let Some(page) = pages.try_next().await? {
        for o in &page.objects {
            total.objects += 1;
            total.bytes += o.size;
            if a.depth > 0 {
                let rel = o.key.strip_prefix(r.key.as_str()).unwrap_or(&o.key);
                let g = group(rel, a.depth);
                // Keys arrive in order, so a group's entry is usually the
                // last one made: look it up before allocating its name.
                match groups.get_mut(g) {
                    Some(u) => {
                        u.objects += 1;
                        u.bytes += o.size;
                    }
                    None => {
                        groups.insert(
                            g.to_string(),
                            Usage {
                                objects: 1,
                                bytes: o.size,
                            },
                        );
                    }
                }
            }
        }
    }
    let size = |b: u64| if a.bytes { b.to_string() } else { human(b) };
    for (g, u) in &groups {
        let url = r.with_key(format!("{}{g}", r.key)).to_string();
        if a.json {
            println!(
                "{}",
                serde_json::json!({"prefix": format!("{}{g}", r.key), "objects": u.objects, "bytes": u.bytes})
            );
        } else {
            println!("{:>10}  {:>9}  {}", size(u.bytes), u.objects, visible(&url));
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({"total": true, "prefix": r.key, "objects": total.objects, "bytes": total.bytes})
        );
    } else {
        println!(
            "{:>10}  {:>9}  {} (total)",
            size(total.bytes),
            total.objects,
            visible(&r.to_string())
        );
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::group;

    #[test]
    fn keys_fall_into_the_group_of_their_first_segments() {
        assert_eq!(group("a/b/c.txt", 0), "");
        assert_eq!(group("a/b/c.txt", 1), "a/");
        assert_eq!(group("a/b/c.txt", 2), "a/b/");
        assert_eq!(group("a/b/c.txt", 5), "a/b/");
        assert_eq!(group("top.txt", 1), "");
        assert_eq!(group("a//b", 2), "a//");
    }
}
