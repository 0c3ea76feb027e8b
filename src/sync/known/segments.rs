//! The cache's directory: numbered segment files, newest last, and the
//! merge that reads them as one sorted stream in which a newer segment's
//! entry for a key hides an older one's.
//!
//! A run appends one segment for what it learned (nothing when it learned
//! nothing) instead of rewriting the whole cache; compaction folds them
//! into one when they pile up or when many entries name deleted objects.
//! Names are `{seq:010}-{pid}.seg`, so two processes never write the same
//! file; each is written whole and renamed into place.

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};

use super::segment::{Reader, Record, Writer};

pub type Item<E> = (String, E);
pub type Source<E> = Box<dyn Iterator<Item = Item<E>> + Send>;

/// The segment files in `dir`, oldest first, with their sequence numbers.
pub fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".seg")?;
            let (seq, pid) = stem.split_once('-')?;
            if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((seq.parse().ok()?, e.path()))
        })
        .collect();
    out.sort();
    out
}

pub fn name(seq: u64) -> String {
    format!("{seq:010}-{}.seg", std::process::id())
}

/// One segment's entries; a file that cannot be opened reads as empty.
pub fn open<E: Record>(path: &Path) -> Source<E> {
    match File::open(path) {
        Ok(f) => Box::new(Reader::<_, E>::new(BufReader::with_capacity(64 * 1024, f))),
        Err(_) => Box::new(std::iter::empty()),
    }
}

/// Writes `items` (ascending keys) as segment `seq` of `dir`; returns its
/// path.
pub fn write<E: Record>(
    dir: &Path,
    seq: u64,
    items: impl Iterator<Item = Item<E>>,
) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name(seq));
    crate::atomic_file::write_atomic_with(&path, |f| {
        let mut w: Writer<_, E> = Writer::new(BufWriter::with_capacity(256 * 1024, f))?;
        for (k, e) in items {
            w.push(&k, &e)?;
        }
        let (_, out) = w.finish()?;
        out.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })?;
    Ok(path)
}

/// Sources merged by key, oldest first: for a key in several, the entry
/// of the newest wins.
pub struct Merged<E> {
    sources: Vec<Source<E>>,
    heads: Vec<Option<Item<E>>>,
}

impl<E> Merged<E> {
    pub fn new(mut sources: Vec<Source<E>>) -> Merged<E> {
        let heads = sources.iter_mut().map(|s| s.next()).collect();
        Merged { sources, heads }
    }
}

impl<E> Iterator for Merged<E> {
    type Item = Item<E>;

    fn next(&mut self) -> Option<Item<E>> {
        let min = self.heads.iter().flatten().map(|(k, _)| k).min()?.clone();
        let mut out = None;
        for (head, source) in self.heads.iter_mut().zip(&mut self.sources) {
            if head.as_ref().is_some_and(|(k, _)| *k == min) {
                out = head.take();
                *head = source.next();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::known::segment::Entry;

    fn e(size: u64) -> Entry {
        Entry {
            etag: "e".into(),
            size,
            lm: None,
            mtime: None,
            sum: None,
        }
    }

    fn src(items: &[(&str, u64)]) -> Source<Entry> {
        let v: Vec<Item<Entry>> = items.iter().map(|(k, s)| (k.to_string(), e(*s))).collect();
        Box::new(v.into_iter())
    }

    #[test]
    fn newest_wins_and_order_holds() {
        let m = Merged::new(vec![
            src(&[("a", 1), ("c", 1), ("d", 1)]),
            src(&[("b", 2), ("c", 2)]),
            src(&[("c", 3), ("e", 3)]),
        ]);
        let got: Vec<(String, u64)> = m.map(|(k, e)| (k, e.size)).collect();
        let want = [("a", 1), ("b", 2), ("c", 3), ("d", 1), ("e", 3)];
        assert_eq!(got, want.map(|(k, s)| (k.to_string(), s)));
    }

    #[test]
    fn lists_only_segments_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "0000000010-7.seg",
            "0000000002-9.seg",
            ".0000000003-1.seg.1.tmp",
            "x.seg",
            "0000000004-.seg",
            "k.json",
        ] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let got: Vec<u64> = list(dir.path()).into_iter().map(|(s, _)| s).collect();
        assert_eq!(got, [2, 10]);
    }
}
