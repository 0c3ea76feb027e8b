//! Where a bucket is served from. A bucket asked for through the wrong
//! region or endpoint is answered with a hint (a 301 with
//! `x-amz-bucket-region`, AuthorizationHeaderMalformed naming the region,
//! OSS's AccessDenied naming the endpoint); as the AWS SDKs do, the store
//! follows the hint once, re-signs for the bucket's region and remembers
//! it for the rest of the process. This module decides where to go; the
//! HTTP store asks and keeps the answer.

use super::dialect::Dialect;

/// A bucket's region and the host (with port) its requests go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The region requests are signed for (none under OSS V1).
    pub region: Option<String>,
    /// The service host, before any virtual-hosted bucket prefix.
    pub host: String,
}

/// What the server said about where the bucket is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hint {
    pub region: Option<String>,
    /// An endpoint host (OSS: `oss-cn-beijing.aliyuncs.com`).
    pub endpoint: Option<String>,
}

/// `oss-cn-hangzhou.aliyuncs.com` and `oss-cn-hangzhou-internal.aliyuncs.com` -> `cn-hangzhou`.
pub fn oss_region_from_host(host: &str) -> Option<String> {
    let first = host.split('.').next()?;
    let r = first.strip_prefix("oss-")?;
    let r = r.strip_suffix("-internal").unwrap_or(r);
    (!r.is_empty()).then(|| r.to_string())
}

/// AWS's own S3 host for `region` when `host` is one of AWS's regional or
/// global S3 endpoints (plain, dualstack, FIPS; `.amazonaws.com` and
/// China's `.amazonaws.com.cn`). `None` for anything else: a private
/// endpoint (MinIO, Garage, a VPC endpoint, an access point) serves its
/// regions at one address, so only the signature changes.
pub fn aws_host_for_region(host: &str, region: &str) -> Option<String> {
    let (name, port) = match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (host, None),
    };
    let suffix = [".amazonaws.com.cn", ".amazonaws.com"]
        .into_iter()
        .find(|s| name.ends_with(s))?;
    let labels: Vec<&str> = name[..name.len() - suffix.len()].split('.').collect();
    let service = match labels.as_slice() {
        ["s3"] | ["s3-external-1"] | ["s3", _] => "s3".to_string(),
        [legacy] if legacy.starts_with("s3-") && !legacy.starts_with("s3-fips") => "s3".into(),
        ["s3-fips"] | ["s3-fips", _] => "s3-fips".into(),
        ["s3", "dualstack", _] => "s3.dualstack".into(),
        ["s3-fips", "dualstack", _] => "s3-fips.dualstack".into(),
        _ => return None,
    };
    let mut out = format!("{service}.{region}{suffix}");
    if let Some(p) = port {
        out.push(':');
        out.push_str(p);
    }
    Some(out)
}

/// Where to send a bucket's requests after the server answered `hint` to
/// a request sent to `now`; `None` when the hint says nothing new (the
/// error then stands, with its message naming the fix).
/// A region name as the stores spell them (`eu-west-1`, `cn-hangzhou`):
/// nothing else may reach a host name or a signature.
fn plausible_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 64
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A bare DNS name (letters, digits, `-`, `.`), an optional port: no path,
/// query, user or scheme can ride along into a URL.
fn plausible_host(h: &str) -> bool {
    let name = match h.rsplit_once(':') {
        Some((n, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => h,
    };
    !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

pub fn relocate(dialect: Dialect, now: &Place, hint: &Hint) -> Option<Place> {
    if hint.region.as_deref().is_some_and(|r| !plausible_region(r))
        || hint.endpoint.as_deref().is_some_and(|e| !plausible_host(e))
    {
        return None;
    }
    let next = match dialect {
        Dialect::S3 => {
            let region = hint.region.clone()?;
            let host = aws_host_for_region(&now.host, &region).unwrap_or_else(|| now.host.clone());
            Place {
                // Unsigned requests have no region to change, but the host does.
                region: now.region.as_ref().map(|_| region),
                host,
            }
        }
        Dialect::Oss => {
            // Only Alibaba's own endpoints are swapped for the one named:
            // a proxy or private endpoint named by the user stays.
            let endpoint = hint.endpoint.clone()?;
            let official = |h: &str| h.split(':').next().unwrap_or(h).ends_with(".aliyuncs.com");
            if !official(&now.host) || !official(&endpoint) {
                return None;
            }
            let region = match &now.region {
                Some(_) => Some(oss_region_from_host(&endpoint)?),
                None => None,
            };
            Place {
                region,
                host: endpoint,
            }
        }
    };
    (next != *now).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::Dialect;
    use super::*;

    fn place(region: &str, host: &str) -> Place {
        Place {
            region: Some(region.into()),
            host: host.into(),
        }
    }

    fn hint(region: Option<&str>, endpoint: Option<&str>) -> Hint {
        Hint {
            region: region.map(Into::into),
            endpoint: endpoint.map(Into::into),
        }
    }

    #[test]
    fn aws_endpoints_move_with_the_region() {
        let cases = [
            ("s3.amazonaws.com", "s3.eu-west-1.amazonaws.com"),
            ("s3.us-east-1.amazonaws.com", "s3.eu-west-1.amazonaws.com"),
            ("s3-external-1.amazonaws.com", "s3.eu-west-1.amazonaws.com"),
            ("s3-us-west-2.amazonaws.com", "s3.eu-west-1.amazonaws.com"),
            (
                "s3.dualstack.us-east-1.amazonaws.com",
                "s3.dualstack.eu-west-1.amazonaws.com",
            ),
            (
                "s3-fips.us-east-1.amazonaws.com",
                "s3-fips.eu-west-1.amazonaws.com",
            ),
            (
                "s3-fips.dualstack.us-east-1.amazonaws.com",
                "s3-fips.dualstack.eu-west-1.amazonaws.com",
            ),
            (
                "s3.cn-north-1.amazonaws.com.cn",
                "s3.eu-west-1.amazonaws.com.cn",
            ),
            (
                "s3.us-east-1.amazonaws.com:443",
                "s3.eu-west-1.amazonaws.com:443",
            ),
        ];
        for (from, to) in cases {
            assert_eq!(
                aws_host_for_region(from, "eu-west-1").as_deref(),
                Some(to),
                "{from}"
            );
        }
        for other in [
            "127.0.0.1:3900",
            "minio.example.com",
            "bucket.vpce-1a2b.s3.us-east-1.vpce.amazonaws.com",
            "ap-1234.s3-accesspoint.us-east-1.amazonaws.com",
            "ec2.us-east-1.amazonaws.com",
            "amazonaws.com.evil.example",
        ] {
            assert_eq!(aws_host_for_region(other, "eu-west-1"), None, "{other}");
        }
    }

    #[test]
    fn s3_follows_the_region_and_keeps_a_private_endpoint() {
        let aws = place("us-east-1", "s3.us-east-1.amazonaws.com");
        assert_eq!(
            relocate(Dialect::S3, &aws, &hint(Some("eu-west-1"), None)),
            Some(place("eu-west-1", "s3.eu-west-1.amazonaws.com"))
        );
        let private = place("us-east-1", "127.0.0.1:3900");
        assert_eq!(
            relocate(Dialect::S3, &private, &hint(Some("garage"), None)),
            Some(place("garage", "127.0.0.1:3900"))
        );
        // Nothing new, or no region at all: the error stands.
        assert_eq!(
            relocate(Dialect::S3, &aws, &hint(Some("us-east-1"), None)),
            None
        );
        assert_eq!(
            relocate(Dialect::S3, &aws, &hint(None, Some("x.amazonaws.com"))),
            None
        );
        // Unsigned: only the host moves.
        let anon = Place {
            region: None,
            host: "s3.amazonaws.com".into(),
        };
        assert_eq!(
            relocate(Dialect::S3, &anon, &hint(Some("ap-south-1"), None)),
            Some(Place {
                region: None,
                host: "s3.ap-south-1.amazonaws.com".into()
            })
        );
    }

    #[test]
    fn oss_follows_an_official_endpoint_only() {
        let now = place("cn-hangzhou", "oss-cn-hangzhou.aliyuncs.com");
        assert_eq!(
            relocate(
                Dialect::Oss,
                &now,
                &hint(None, Some("oss-cn-beijing.aliyuncs.com"))
            ),
            Some(place("cn-beijing", "oss-cn-beijing.aliyuncs.com"))
        );
        let proxy = place("cn-hangzhou", "127.0.0.1:8080");
        assert_eq!(
            relocate(
                Dialect::Oss,
                &proxy,
                &hint(None, Some("oss-cn-beijing.aliyuncs.com"))
            ),
            None
        );
        assert_eq!(
            relocate(Dialect::Oss, &now, &hint(None, Some("evil.example.com"))),
            None
        );
        let v1 = Place {
            region: None,
            host: "oss-cn-hangzhou.aliyuncs.com".into(),
        };
        assert_eq!(
            relocate(
                Dialect::Oss,
                &v1,
                &hint(None, Some("oss-cn-beijing.aliyuncs.com"))
            ),
            Some(Place {
                region: None,
                host: "oss-cn-beijing.aliyuncs.com".into()
            })
        );
    }

    #[test]
    fn a_hostile_hint_goes_nowhere() {
        let aws = place("us-east-1", "s3.us-east-1.amazonaws.com");
        for r in ["foo.evil.com?", "eu-west-1/x", "", "EU WEST"] {
            assert_eq!(
                relocate(Dialect::S3, &aws, &hint(Some(r), None)),
                None,
                "{r:?}"
            );
        }
        let oss = place("cn-hangzhou", "oss-cn-hangzhou.aliyuncs.com");
        for e in [
            "oss-x.evil.com/.aliyuncs.com",
            "a@b.aliyuncs.com",
            "oss-cn-beijing.aliyuncs.com?x",
        ] {
            assert_eq!(
                relocate(Dialect::Oss, &oss, &hint(None, Some(e))),
                None,
                "{e:?}"
            );
        }
    }

    #[test]
    fn oss_regions_come_from_the_endpoint() {
        assert_eq!(
            oss_region_from_host("oss-cn-hangzhou.aliyuncs.com").as_deref(),
            Some("cn-hangzhou")
        );
        assert_eq!(
            oss_region_from_host("oss-cn-hangzhou-internal.aliyuncs.com").as_deref(),
            Some("cn-hangzhou")
        );
        assert_eq!(oss_region_from_host("s3.amazonaws.com"), None);
    }
}
