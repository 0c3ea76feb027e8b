//! Request signing, one pure function per scheme. The clock is an argument,
//! so every scheme is checked against fixed vectors from independent
//! implementations (AWS's SigV4 suite, botocore, oss2, alibabacloud-oss-v2).

pub mod oss_v1;
pub mod oss_v4;
pub mod sigv4;
#[cfg(test)]
mod tests;

use time::OffsetDateTime;

use super::credentials::Credentials;

/// Everything a signer may look at. Header names may be in any case.
#[derive(Debug, Clone)]
pub struct SignableRequest<'a> {
    pub method: &'a str,
    /// `Host` header value as sent (`127.0.0.1:3900`, `bucket.oss-cn-hangzhou.aliyuncs.com`).
    pub host: &'a str,
    /// The request path exactly as sent on the wire, already percent-encoded.
    pub path: &'a str,
    /// Query parameters, not encoded; a parameter without a value has `""`.
    pub query: &'a [(String, String)],
    /// Headers that will be sent (other than Host and those the signer adds).
    pub headers: &'a [(String, String)],
    /// The bucket and key addressed, unencoded; OSS signs `/bucket/key`
    /// whatever the addressing style.
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
}

/// Which scheme signs requests for an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// AWS Signature V4 for S3.
    S3V4 { region: String },
    /// OSS Signature V4 (`OSS4-HMAC-SHA256`).
    OssV4 { region: String },
    /// OSS Signature V1 (`OSS ak:sig`, HMAC-SHA1).
    OssV1,
}

/// The payload hash S3 signs. `Unsigned` sends `UNSIGNED-PAYLOAD` (integrity
/// then comes from Content-MD5); `Sha256` signs the body's hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload<'a> {
    Unsigned,
    Sha256(&'a str),
}

impl Scheme {
    /// The headers to add to the request (name, value), e.g. `Authorization`,
    /// `x-amz-date`, `x-amz-content-sha256`, the security token.
    pub fn sign(
        &self,
        req: &SignableRequest<'_>,
        creds: &Credentials,
        payload: &Payload<'_>,
        now: OffsetDateTime,
    ) -> Vec<(String, String)> {
        match self {
            Scheme::S3V4 { region } => sigv4::sign(req, creds, region, "s3", payload, now),
            Scheme::OssV4 { region } => oss_v4::sign(req, creds, region, now),
            Scheme::OssV1 => oss_v1::sign(req, creds, now),
        }
    }
}
