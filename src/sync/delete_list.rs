//! The keys a sync will delete, held until every transfer is done and the
//! gate has looked at the whole run. Past [`IN_MEMORY`] keys they go to an
//! unnamed temporary file, so a `--delete` over a million vanished files
//! holds no more than a run that deletes a few.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

/// Keys kept in memory before the rest is spilled (a few MiB).
pub const IN_MEMORY: usize = 65_536;

#[derive(Debug)]
pub(crate) struct DeleteList {
    /// Spilled keys (the earliest ones), length-prefixed: keys may hold
    /// any byte a line or a separator would.
    spilled: Option<BufWriter<File>>,
    spilled_count: u64,
    mem: Vec<String>,
    cap: usize,
}

impl Default for DeleteList {
    fn default() -> Self {
        DeleteList::with_capacity(IN_MEMORY)
    }
}

impl DeleteList {
    pub fn with_capacity(cap: usize) -> DeleteList {
        DeleteList {
            spilled: None,
            spilled_count: 0,
            mem: Vec::new(),
            cap: cap.max(1),
        }
    }

    pub fn push(&mut self, key: String) {
        self.mem.push(key);
        if self.mem.len() >= self.cap {
            // A spill that fails keeps the keys in memory: more memory,
            // never a lost or partial list.
            if let Err(e) = self.spill() {
                tracing::warn!("delete list kept in memory: {e}");
                self.cap = usize::MAX;
            }
        }
    }

    fn spill(&mut self) -> io::Result<()> {
        if self.spilled.is_none() {
            self.spilled = Some(BufWriter::new(tempfile::tempfile()?));
        }
        let out = self.spilled.as_mut().expect("just made");
        for k in &self.mem {
            out.write_all(&(k.len() as u32).to_le_bytes())?;
            out.write_all(k.as_bytes())?;
        }
        self.spilled_count += self.mem.len() as u64;
        self.mem.clear();
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.spilled_count + self.mem.len() as u64
    }

    /// Every key, in the order pushed. A spilled key that cannot be read
    /// back is an error item, after which nothing more comes.
    pub fn into_keys(self) -> impl Iterator<Item = io::Result<String>> {
        let spilled = self.spilled.map(|w| -> io::Result<BufReader<File>> {
            let mut f = w.into_inner().map_err(|e| e.into_error())?;
            f.rewind()?;
            Ok(BufReader::new(f))
        });
        let mut reader = spilled;
        let mut left = self.spilled_count;
        let from_file = std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            let r = match reader.as_mut()? {
                Ok(r) => r,
                Err(_) => {
                    let Some(Err(e)) = reader.take() else {
                        return None;
                    };
                    left = 0;
                    return Some(Err(e));
                }
            };
            let item = read_key(r);
            left = if item.is_ok() { left - 1 } else { 0 };
            Some(item)
        });
        from_file.chain(self.mem.into_iter().map(Ok))
    }
}

fn read_key(r: &mut impl Read) -> io::Result<String> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let mut b = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

impl FromIterator<String> for DeleteList {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        let mut d = DeleteList::default();
        for k in iter {
            d.push(k);
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_back_in_order_across_the_spill() {
        let keys: Vec<String> = (0..1000)
            .map(|i| format!("dir/{i}\n\u{0}line{}", "é".repeat(i % 5)))
            .collect();
        let mut d = DeleteList::with_capacity(64);
        for k in &keys {
            d.push(k.clone());
        }
        assert_eq!(d.len(), 1000);
        assert!(d.mem.len() < 64, "spilled as it went");
        let back: Vec<String> = d.into_keys().map(|k| k.unwrap()).collect();
        assert_eq!(back, keys);
    }

    #[test]
    fn a_short_list_stays_in_memory() {
        let d: DeleteList = ["b".to_string(), "a".to_string()].into_iter().collect();
        assert!(d.spilled.is_none());
        assert_eq!(
            d.into_keys().map(|k| k.unwrap()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(DeleteList::default().len(), 0);
    }
}
