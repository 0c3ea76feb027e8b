//! SSE-C: objects encrypted with a key the client holds. S3 keeps only the
//! key's MD5, so every request that writes or reads the data (PUT,
//! CreateMultipartUpload, UploadPart, CompleteMultipartUpload, GET, HEAD;
//! both sides of a copy) carries the key; listing and deleting do not.

use std::fmt;

use base64::Engine as _;

const ALGORITHM: &str = "AES256";

#[derive(Clone, PartialEq, Eq)]
pub struct CustomerKey {
    key: [u8; 32],
}

impl CustomerKey {
    /// A key file holds the 32 bytes themselves, or their base64 (as
    /// `openssl rand -base64 32` writes it).
    pub fn from_file_bytes(bytes: &[u8]) -> Result<CustomerKey, String> {
        if let Ok(key) = <[u8; 32]>::try_from(bytes) {
            return Ok(CustomerKey { key });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| WRONG_SIZE.to_string())?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| WRONG_SIZE.to_string())?;
        let key = <[u8; 32]>::try_from(decoded.as_slice()).map_err(|_| WRONG_SIZE.to_string())?;
        Ok(CustomerKey { key })
    }

    fn values(&self) -> [String; 3] {
        let b64 = base64::engine::general_purpose::STANDARD;
        [
            ALGORITHM.to_string(),
            b64.encode(self.key),
            b64.encode(crate::checksum::md5(&self.key)),
        ]
    }

    /// For a request on an object encrypted (or to be) with this key.
    pub fn headers(&self) -> Vec<(String, String)> {
        let [a, k, m] = self.values();
        vec![
            ("x-amz-server-side-encryption-customer-algorithm".into(), a),
            ("x-amz-server-side-encryption-customer-key".into(), k),
            ("x-amz-server-side-encryption-customer-key-md5".into(), m),
        ]
    }

    /// For the source of a copy.
    pub fn copy_source_headers(&self) -> Vec<(String, String)> {
        let [a, k, m] = self.values();
        vec![
            (
                "x-amz-copy-source-server-side-encryption-customer-algorithm".into(),
                a,
            ),
            (
                "x-amz-copy-source-server-side-encryption-customer-key".into(),
                k,
            ),
            (
                "x-amz-copy-source-server-side-encryption-customer-key-md5".into(),
                m,
            ),
        ]
    }
}

const WRONG_SIZE: &str =
    "an SSE-C key file must hold a 256-bit key: 32 bytes, or their base64 (openssl rand -base64 32)";

impl fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomerKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_or_base64_and_nothing_else() {
        let raw = [7u8; 32];
        let a = CustomerKey::from_file_bytes(&raw).unwrap();
        let text = format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        assert_eq!(CustomerKey::from_file_bytes(text.as_bytes()).unwrap(), a);
        assert!(CustomerKey::from_file_bytes(&[1u8; 31]).is_err());
        assert!(CustomerKey::from_file_bytes(b"not a key").is_err());
        assert!(!format!("{a:?}").contains("BwcH"));
        let h = a.headers();
        assert_eq!(h[0].1, "AES256");
        // The MD5 S3 checks the key against, of the raw bytes.
        assert_eq!(
            h[2].1,
            base64::engine::general_purpose::STANDARD.encode(crate::checksum::md5(&raw))
        );
    }
}
