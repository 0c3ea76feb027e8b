//! What a run would cost, from what its `--dry-run` planned: requests by
//! kind and bytes each way, so a surprise bill shows before it happens.
//! Pure: each planned action is priced by the same rules the transfers
//! follow (the big-file threshold, `parts::choose_part_size` and
//! `parts::layout`, the single-copy limit, batches of 1,000 deletes); the
//! LISTs and HEADs the dry run itself sent are added by the caller, since
//! the real run sends them again.

use serde::Serialize;

use crate::transfer::parts::{choose_part_size, layout, stream_part_size, DEFAULT_PART_SIZE};

/// Requests and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Cost {
    pub list: u64,
    pub head: u64,
    /// Single-request uploads.
    pub put: u64,
    /// Parts of multipart uploads.
    pub parts: u64,
    /// CreateMultipartUpload and CompleteMultipartUpload, two per upload.
    pub multipart: u64,
    /// CopyObject and UploadPartCopy.
    pub copy: u64,
    pub get: u64,
    /// DeleteObjects batches (up to 1,000 keys each).
    pub delete: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// What prices an action: the transfer settings of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub bigfile_threshold: u64,
    pub part_size: Option<u64>,
    /// The largest object one CopyObject copies.
    pub max_single_copy: u64,
    /// The run's deletes are of objects (not local files).
    pub deletes_objects: bool,
}

/// Prices planned actions one at a time.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    cost: Cost,
    deletes: u64,
}

impl Tally {
    /// One planned action on an object or file of `size` bytes.
    pub fn add(&mut self, action: &str, size: u64, rules: &Rules) {
        let c = &mut self.cost;
        match action {
            "upload" => {
                c.bytes_up += size;
                if size < rules.bigfile_threshold || size == 0 {
                    c.put += 1;
                } else {
                    c.multipart += 2;
                    c.parts += parts(size, rules.part_size);
                }
            }
            "download" => {
                c.bytes_down += size;
                // A large object's HEAD is sent by the dry run too.
                c.get += if size < rules.bigfile_threshold || size == 0 {
                    1
                } else {
                    parts(size, rules.part_size)
                };
            }
            // A server-side copy: the source's HEAD, then one copy or a
            // multipart copy of part-size ranges.
            "copy" | "back up" => {
                c.head += 1;
                if size <= rules.max_single_copy {
                    c.copy += 1;
                } else {
                    c.multipart += 2;
                    c.copy += size.div_ceil(crate::store::copy::DEFAULT_COPY_PART);
                }
            }
            // Between stores: the source's HEAD and GETs, a stream upload.
            "stream" => {
                c.head += 1;
                c.bytes_down += size;
                c.bytes_up += size;
                let part = rules.part_size.unwrap_or(DEFAULT_PART_SIZE).max(1);
                c.get += if size < rules.bigfile_threshold.max(1) {
                    1
                } else {
                    size.div_ceil(part)
                };
                let first = stream_part_size(part, 1);
                if size < first {
                    c.put += 1;
                } else {
                    c.multipart += 2;
                    c.parts += stream_parts(size, part);
                }
            }
            "delete" => self.deletes += 1,
            _ => {}
        }
    }

    /// The cost of everything added, with the deletes in batches.
    pub fn total(&self, rules: &Rules) -> Cost {
        let mut c = self.cost;
        if rules.deletes_objects {
            c.delete = self.deletes.div_ceil(1000);
        }
        c
    }
}

fn parts(size: u64, part_size: Option<u64>) -> u64 {
    layout(size, choose_part_size(size, part_size)).len() as u64
}

/// Parts of a stream of `size` bytes, sizes growing as the stream goes.
fn stream_parts(size: u64, base: u64) -> u64 {
    let (mut n, mut left) = (0u32, size);
    while left > 0 {
        n += 1;
        left = left.saturating_sub(stream_part_size(base, n));
    }
    u64::from(n)
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = crate::units::human;
        write!(
            f,
            "{} LIST, {} HEAD, {} PUT, {} parts (+{} multipart start/complete), {} COPY, {} GET, {} DELETE batches; {} up, {} down",
            self.list,
            self.head,
            self.put,
            self.parts,
            self.multipart,
            self.copy,
            self.get,
            self.delete,
            h(self.bytes_up),
            h(self.bytes_down)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn rules() -> Rules {
        Rules {
            bigfile_threshold: 100 * MIB,
            part_size: None,
            max_single_copy: 5 << 30,
            deletes_objects: true,
        }
    }

    #[test]
    fn each_action_is_priced_as_the_transfers_send_it() {
        let r = rules();
        let mut t = Tally::default();
        t.add("upload", 10, &r);
        t.add("upload", 0, &r);
        // 200 MiB in the default 8 MiB parts: 25 parts.
        t.add("upload", 200 * MIB, &r);
        t.add("download", 5, &r);
        t.add("download", 100 * MIB, &r);
        t.add("copy", 6 << 30, &r);
        t.add("back up", 1, &r);
        for _ in 0..1001 {
            t.add("delete", 0, &r);
        }
        let c = t.total(&r);
        assert_eq!((c.put, c.parts, c.multipart), (2, 25, 2 + 2));
        assert_eq!(c.get, 1 + 13, "100 MiB in 8 MiB ranges");
        assert_eq!(c.copy, (6u64 << 30).div_ceil(8 * MIB) + 1);
        assert_eq!(c.head, 2);
        assert_eq!(c.delete, 2);
        assert_eq!(c.bytes_up, 10 + 200 * MIB);
        assert_eq!(c.bytes_down, 5 + 100 * MIB);
        let local = Rules {
            deletes_objects: false,
            ..r
        };
        assert_eq!(t.total(&local).delete, 0, "local deletes cost no request");
    }

    #[test]
    fn a_stream_is_priced_by_its_growing_parts() {
        let r = Rules {
            part_size: Some(5 * MIB),
            bigfile_threshold: 5 * MIB,
            ..rules()
        };
        let mut t = Tally::default();
        t.add("stream", 12 * MIB, &r);
        t.add("stream", MIB, &r);
        let c = t.total(&r);
        assert_eq!((c.put, c.parts, c.multipart, c.head), (1, 3, 2, 2));
        assert_eq!(c.get, 3 + 1);
        assert_eq!(stream_parts(5 * MIB * 1000 + 1, 5 * MIB), 1001);
    }
}
