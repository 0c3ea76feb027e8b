//! What a rerun still has to do, decided from plain data: the part layout,
//! what the checkpoint recorded, and what the server lists. The server is
//! the truth; the checkpoint only vouches for parts the server confirms.

use serde::{Deserialize, Serialize};

use super::parts::PartSpec;
use crate::store::PartInfo;

/// A part the checkpoint says was uploaded, with the digests needed to
/// verify the finished object without reading the part again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedPart {
    pub number: u32,
    pub etag: String,
    /// Hex MD5; empty when the part was sent with a checksum instead.
    pub md5: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64: Option<u64>,
    /// Base64 flexible checksum in the upload's algorithm, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    NotOnServer,
    SizeMismatch {
        listed: u64,
        expected: u64,
    },
    EtagMismatch,
    /// Listed with a checksum other than the one recorded.
    ChecksumMismatch,
    /// Listed without an ETag: nothing to complete the upload with.
    NoEtag,
    Duplicate,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadResume {
    /// Confirmed by both checkpoint and server: nothing to do.
    pub done: Vec<RecordedPart>,
    /// On the server with the right size but unknown to the checkpoint
    /// (the process died between upload and record): digest the local part
    /// and keep the server's copy if its checksum (or, without one, its
    /// MD5 ETag) matches, else send.
    pub verify: Vec<(PartSpec, PartInfo)>,
    /// Must be (re)sent.
    pub send: Vec<PartSpec>,
    /// Why recorded or listed parts were not trusted, for the user's notice.
    pub rejected: Vec<(u32, Rejection)>,
}

/// ETags compare without their quotes and case.
pub(crate) fn same_etag(a: &str, b: &str) -> bool {
    crate::checksum::normalize_etag(a).eq_ignore_ascii_case(crate::checksum::normalize_etag(b))
}

/// A recorded checksum must be the listed one where the server lists one.
fn same_checksum(r: &RecordedPart, server: &PartInfo) -> bool {
    match (&r.checksum, &server.checksum) {
        (Some(mine), Some(theirs)) => *mine == theirs.to_base64(),
        _ => true,
    }
}

pub fn plan_upload_resume(
    layout: &[PartSpec],
    recorded: &[RecordedPart],
    listed: &[PartInfo],
) -> UploadResume {
    let mut plan = UploadResume::default();
    for spec in layout {
        let on_server: Vec<&PartInfo> = listed
            .iter()
            .filter(|p| p.part_number == spec.number)
            .collect();
        let rec = recorded.iter().find(|r| r.number == spec.number);
        let server = match on_server.as_slice() {
            [] => {
                if rec.is_some() {
                    plan.rejected.push((spec.number, Rejection::NotOnServer));
                }
                plan.send.push(*spec);
                continue;
            }
            [one] => *one,
            _ => {
                plan.rejected.push((spec.number, Rejection::Duplicate));
                plan.send.push(*spec);
                continue;
            }
        };
        if server.etag.is_empty() {
            plan.rejected.push((spec.number, Rejection::NoEtag));
            plan.send.push(*spec);
            continue;
        }
        if server.size != spec.len {
            plan.rejected.push((
                spec.number,
                Rejection::SizeMismatch {
                    listed: server.size,
                    expected: spec.len,
                },
            ));
            plan.send.push(*spec);
            continue;
        }
        match rec {
            Some(r) if !same_etag(&r.etag, &server.etag) => {
                plan.rejected.push((spec.number, Rejection::EtagMismatch));
                plan.send.push(*spec);
            }
            Some(r) if !same_checksum(r, server) => {
                plan.rejected
                    .push((spec.number, Rejection::ChecksumMismatch));
                plan.send.push(*spec);
            }
            Some(r) => plan.done.push(r.clone()),
            None => plan.verify.push((*spec, server.clone())),
        }
    }
    plan
}

/// Ranges a resumed download still needs: everything unless the temporary
/// file is still there at full length, else the parts not recorded done.
pub fn plan_download_resume(
    layout: &[PartSpec],
    done: &[u32],
    temp_len: Option<u64>,
    size: u64,
) -> Vec<PartSpec> {
    if temp_len != Some(size) {
        return layout.to_vec();
    }
    layout
        .iter()
        .filter(|p| !done.contains(&p.number))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::parts::layout;

    fn rec(n: u32, etag: &str) -> RecordedPart {
        RecordedPart {
            number: n,
            etag: etag.into(),
            md5: etag.into(),
            crc64: None,
            checksum: None,
        }
    }

    fn listed(n: u32, etag: &str, size: u64) -> PartInfo {
        PartInfo {
            part_number: n,
            etag: etag.into(),
            size,
            etag_kind: crate::store::EtagKind::from_form(etag),
            checksum: None,
        }
    }

    fn nums(v: &[PartSpec]) -> Vec<u32> {
        v.iter().map(|p| p.number).collect()
    }

    #[test]
    fn fresh_upload_sends_everything() {
        let l = layout(25, 10);
        let p = plan_upload_resume(&l, &[], &[]);
        assert_eq!(nums(&p.send), vec![1, 2, 3]);
        assert!(p.done.is_empty() && p.verify.is_empty() && p.rejected.is_empty());
    }

    #[test]
    fn gaps_are_filled_and_confirmed_parts_kept() {
        let l = layout(45, 10);
        let p = plan_upload_resume(
            &l,
            &[rec(1, "a"), rec(3, "c")],
            &[
                listed(1, "\"A\"", 10),
                listed(3, "c", 10),
                listed(5, "e", 5),
            ],
        );
        assert_eq!(
            p.done.iter().map(|r| r.number).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(nums(&p.send), vec![2, 4]);
        assert_eq!(p.verify.len(), 1);
        assert_eq!(p.verify[0].0.number, 5);
    }

    #[test]
    fn server_is_the_truth() {
        let l = layout(30, 10);
        let p = plan_upload_resume(
            &l,
            &[rec(1, "a"), rec(2, "b"), rec(3, "c")],
            &[listed(1, "a", 9), listed(2, "zzz", 10)],
        );
        assert!(p.done.is_empty());
        assert_eq!(nums(&p.send), vec![1, 2, 3]);
        assert_eq!(
            p.rejected,
            vec![
                (
                    1,
                    Rejection::SizeMismatch {
                        listed: 9,
                        expected: 10
                    }
                ),
                (2, Rejection::EtagMismatch),
                (3, Rejection::NotOnServer),
            ]
        );
    }

    #[test]
    fn duplicates_and_extra_parts() {
        let l = layout(20, 10);
        let p = plan_upload_resume(
            &l,
            &[rec(1, "a")],
            &[
                listed(1, "a", 10),
                listed(1, "a", 10),
                listed(2, "b", 10),
                listed(7, "x", 10),
            ],
        );
        assert_eq!(nums(&p.send), vec![1]);
        assert_eq!(p.rejected, vec![(1, Rejection::Duplicate)]);
        assert_eq!(
            p.verify.iter().map(|v| v.0.number).collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[test]
    fn listed_checksums_and_etags_must_agree_with_the_record() {
        use crate::checksum::{Algorithm, Checksum};
        let l = layout(30, 10);
        let sum = |v| Checksum::crc(Algorithm::Crc64Nvme, v);
        let with = |mut r: RecordedPart, v| {
            r.checksum = Some(sum(v).to_base64());
            r
        };
        let mut p1 = listed(1, "a", 10);
        p1.checksum = Some(sum(1));
        let mut p2 = listed(2, "b", 10);
        p2.checksum = Some(sum(99));
        let p = plan_upload_resume(
            &l,
            &[with(rec(1, "a"), 1), with(rec(2, "b"), 2)],
            &[p1, p2, listed(3, "", 10)],
        );
        assert_eq!(p.done.iter().map(|r| r.number).collect::<Vec<_>>(), vec![1]);
        assert_eq!(nums(&p.send), vec![2, 3]);
        assert_eq!(
            p.rejected,
            vec![(2, Rejection::ChecksumMismatch), (3, Rejection::NoEtag)]
        );
    }

    #[test]
    fn download_resume_needs_the_temp_file() {
        let l = layout(30, 10);
        assert_eq!(
            nums(&plan_download_resume(&l, &[1, 3], Some(30), 30)),
            vec![2]
        );
        assert_eq!(
            nums(&plan_download_resume(&l, &[1, 3], Some(29), 30)),
            vec![1, 2, 3]
        );
        assert_eq!(
            nums(&plan_download_resume(&l, &[1, 3], None, 30)),
            vec![1, 2, 3]
        );
    }
}
