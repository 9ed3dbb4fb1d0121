//! `X-Request-Id`: taken from the caller when it is a sane token, generated otherwise; echoed on
//! the response and carried by the request's tracing span (both in `http::gate`) so every log
//! line of a request has it.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::http::header::HeaderValue;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest};

pub const HEADER: &str = "x-request-id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_valid(v))
            .map(|v| Self(v.to_owned()))
            .unwrap_or_else(Self::generate)
    }

    /// A random (version 4) UUID from the thread's fast generator, not the OS's: an id must be
    /// unique, not unguessable (it grants nothing), and a `getrandom` system call per request
    /// cost more than the rest of the id.
    pub fn generate() -> Self {
        let uuid = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        Self(uuid.hyphenated().encode_lower(&mut text).to_owned())
    }
}

/// Caller-supplied ids end up in logs and headers: keep them short and free of anything a log
/// parser or a header could misread.
fn is_valid(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

impl FromRequest for RequestId {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId::from_header(req.headers().get(HEADER)));
        ready(Ok(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_ids_are_kept_only_when_sane() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(RequestId::from_header(Some(&ok)).0, "abc-123_x.y:z");
        for bad in ["", "has space", "semi;colon", &"x".repeat(129)] {
            let v = HeaderValue::from_str(bad).unwrap();
            let got = RequestId::from_header(Some(&v)).0;
            assert_ne!(got, bad);
            assert!(uuid::Uuid::parse_str(&got).is_ok());
        }
    }

    #[test]
    fn generated_ids_are_version_4_uuids_and_differ() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| RequestId::generate().0).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{id}");
        }
    }
}
