//! Watch mode's renames: a file that appears in the same pass as another
//! path vanishes, with the vanished object's size and content, is that
//! object under a new name. It is copied server-side from the old key
//! (no byte of it sent again), and the old key goes the way every
//! vanished path goes (deleted under `--delete` and its guards, kept
//! otherwise). Size only picks candidates: the file's digest must match
//! the checksum the store keeps for the old object before anything is
//! copied, so files that merely look alike (reproducible builds give
//! every file one mtime) are uploaded as usual.

use super::check::local::digests as file_digest;
use super::events::Event;
use super::plan::Reason;
use super::runner::Runner;
use super::walk::LocalEntry;
use crate::store::{copy_object_any_size, part_bounds, ObjectMeta};
use crate::transfer::verify::Check;

/// Pure: pairs each new file with an unused vanished object of its size
/// (by index), in order. Empty files are left out: uploading one costs
/// no more than copying it.
pub(crate) fn pair_by_size(new: &[u64], old: &[u64]) -> Vec<(usize, usize)> {
    let mut used = vec![false; old.len()];
    let mut pairs = Vec::new();
    for (i, &size) in new.iter().enumerate() {
        if size == 0 {
            continue;
        }
        if let Some(j) = (0..old.len()).find(|&j| !used[j] && old[j] == size) {
            used[j] = true;
            pairs.push((i, j));
        }
    }
    pairs
}

/// Whether the file holds what the store keeps for `meta`, by the
/// checksum the store shows (read locally; nothing is sent). Where the
/// store keeps nothing comparable, no.
pub(crate) async fn same_content(runner: &Runner<'_>, e: &LocalEntry, meta: &ObjectMeta) -> bool {
    let check = Check::choose(meta, true);
    let bounds = match &check {
        Check::Size => return false,
        Check::Composite { parts, .. } => {
            let t = runner.target;
            match part_bounds(t.store.as_ref(), &t.bucket, &meta.key, *parts, meta).await {
                Ok(b) => b.into_iter().map(|p| p.range).collect(),
                Err(_) => return false,
            }
        }
        _ => Vec::new(),
    };
    let (path, size) = (e.path.clone(), e.size);
    let read = tokio::task::spawn_blocking(move || file_digest(&path, size, &check, &bounds)).await;
    matches!(read, Ok(Ok(Some(d))) if d.local.eq_ignore_ascii_case(&d.remote))
}

/// Copies the old object to the new file's key, server-side.
pub(crate) async fn copy_moved(runner: &Runner<'_>, from_rel: &str, e: LocalEntry) -> Event {
    if let Some(p) = runner.planned("copy", &e.key, Reason::Moved, e.size) {
        return p;
    }
    let t = runner.target;
    let store = t.store.as_ref();
    let (from, to) = (t.key(from_rel), t.key(&e.key));
    let limits = store.copy_limits();
    match copy_object_any_size(store, &t.bucket, &from, &t.bucket, &to, None, &limits).await {
        Ok(_) => Event::Transferred {
            op: "copy",
            key: e.key,
            bytes: 0,
            resumed: 0,
            reason: Reason::Moved,
        },
        Err(err) => Event::store_failed(&e.key, "copy", &err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_files_pair_with_vanished_objects_of_their_size_once_each() {
        assert_eq!(pair_by_size(&[5, 7, 5], &[7, 5]), [(0, 1), (1, 0)]);
        assert_eq!(pair_by_size(&[0], &[0]), []);
        assert_eq!(pair_by_size(&[3], &[4]), []);
        assert_eq!(pair_by_size(&[], &[4]), []);
    }
}
