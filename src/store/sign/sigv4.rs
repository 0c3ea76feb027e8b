use super::{Payload, SignableRequest};
use crate::store::credentials::Credentials;
use time::OffsetDateTime;

pub fn sign(
    _req: &SignableRequest<'_>,
    _creds: &Credentials,
    _region: &str,
    _service: &str,
    _payload: &Payload<'_>,
    _now: OffsetDateTime,
) -> Vec<(String, String)> {
    todo!()
}
