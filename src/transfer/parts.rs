//! How a file is cut into parts. Pure, so the rules (S3's 10,000-part cap,
//! the 5 MiB minimum) are tested without I/O.

use super::MIB;

pub const MAX_PARTS: u64 = 10_000;
/// S3 and OSS reject non-final parts below this size.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// Large enough to keep per-request overhead small, small enough that a
/// lost part costs little and `parallel` parts fit comfortably in memory.
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
/// S3's part size ceiling.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSpec {
    /// 1-based, as the protocol numbers parts.
    pub number: u32,
    pub offset: u64,
    pub len: u64,
}

/// The requested (or default) part size, grown in whole MiB until the file
/// fits in 10,000 parts.
pub fn choose_part_size(size: u64, requested: Option<u64>) -> u64 {
    let base = requested.unwrap_or(DEFAULT_PART_SIZE).max(1);
    if size.div_ceil(base) <= MAX_PARTS {
        return base;
    }
    let min = size.div_ceil(MAX_PARTS);
    min.div_ceil(MIB) * MIB
}

/// The size of part `number` of a stream of unknown length (standard
/// input): `base` for the first 1,000 parts, doubling every 1,000 after,
/// up to S3's ceiling. Parts may differ in size (all but the last must be
/// at least 5 MiB), so 10,000 parts from 8 MiB reach past S3's 5 TiB
/// object limit while a short stream keeps small parts and little memory.
pub fn stream_part_size(base: u64, number: u32) -> u64 {
    let tier = (number.saturating_sub(1) / 1000).min(20);
    base.max(MIN_PART_SIZE)
        .saturating_mul(1 << tier)
        .min(MAX_PART_SIZE)
}

pub fn layout(size: u64, part_size: u64) -> Vec<PartSpec> {
    let n = size.div_ceil(part_size);
    (0..n)
        .map(|i| {
            let offset = i * part_size;
            PartSpec {
                number: (i + 1) as u32,
                offset,
                len: part_size.min(size - offset),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_stream_of_unknown_length_fits_in_ten_thousand_parts() {
        assert_eq!(stream_part_size(DEFAULT_PART_SIZE, 1), DEFAULT_PART_SIZE);
        assert_eq!(stream_part_size(DEFAULT_PART_SIZE, 1000), DEFAULT_PART_SIZE);
        assert_eq!(
            stream_part_size(DEFAULT_PART_SIZE, 1001),
            2 * DEFAULT_PART_SIZE
        );
        assert_eq!(
            stream_part_size(MIB, 1),
            MIN_PART_SIZE,
            "never below the minimum"
        );
        let total: u64 = (1..=MAX_PARTS as u32)
            .map(|n| stream_part_size(DEFAULT_PART_SIZE, n))
            .sum();
        assert!(total >= 5 * 1024 * 1024 * MIB, "{total}");
        assert!(
            (1..=MAX_PARTS as u32).all(|n| stream_part_size(DEFAULT_PART_SIZE, n) <= MAX_PART_SIZE)
        );
    }

    #[test]
    fn default_and_growth() {
        assert_eq!(choose_part_size(200 * MIB, None), DEFAULT_PART_SIZE);
        // 100 GiB at 8 MiB would need 12,800 parts.
        let ps = choose_part_size(100 * 1024 * MIB, None);
        assert!(100 * 1024 * MIB / ps < MAX_PARTS);
        assert_eq!(ps % MIB, 0);
        assert_eq!(choose_part_size(10 * MIB, Some(6 * MIB)), 6 * MIB);
    }

    #[test]
    fn layout_covers_exactly() {
        let l = layout(10, 4);
        assert_eq!(
            l,
            vec![
                PartSpec {
                    number: 1,
                    offset: 0,
                    len: 4
                },
                PartSpec {
                    number: 2,
                    offset: 4,
                    len: 4
                },
                PartSpec {
                    number: 3,
                    offset: 8,
                    len: 2
                },
            ]
        );
        assert!(layout(0, 4).is_empty());
    }

    proptest! {
        #[test]
        fn parts_tile_the_file(size in 1u64..(1u64 << 42), req in proptest::option::of(1u64..(1u64 << 30))) {
            let ps = choose_part_size(size, req);
            let l = layout(size, ps);
            prop_assert!(l.len() as u64 <= MAX_PARTS);
            prop_assert_eq!(l.iter().map(|p| p.len).sum::<u64>(), size);
            prop_assert!(l.windows(2).all(|w| w[0].offset + w[0].len == w[1].offset && w[0].len == ps));
        }
    }
}
