//! Checks a request's HTTP signature the way Intersight does: the `Authorization: Signature …`
//! parameters, the signed headers (which must include `(request-target)`, `host`, `date` and
//! `digest`), the body digest, the date's freshness, and the signature itself with the public
//! key registered under `keyId`. The signing string is rebuilt from the request as received,
//! never from what the client claims it signed, so a client that signs one thing and sends
//! another is refused.

use std::collections::HashMap;

use actix_web::HttpRequest;
use chrono::{DateTime, Utc};

use crate::vendors::intersight::signing::{body_digest, PublicKey};

/// How far a request's `Date` may be from the simulator's clock.
const MAX_SKEW_SECS: i64 = 300;
const REQUIRED: [&str; 4] = ["(request-target)", "host", "date", "digest"];

#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the request has no HTTP signature (Authorization: Signature …)")]
    Missing,
    #[error("malformed Authorization header: {0}")]
    Malformed(&'static str),
    #[error("unknown API key id")]
    UnknownKey,
    #[error("the signature must cover {0}")]
    Uncovered(&'static str),
    #[error("the Digest header does not match the body")]
    Digest,
    #[error("the Date header is missing, unreadable or more than 5 minutes off")]
    Date,
    #[error("the signature does not verify with the API key")]
    Signature,
}

impl Refused {
    pub fn message_id(&self) -> &'static str {
        match self {
            Self::Missing | Self::Malformed(_) => "barcelona_request_signature_missing",
            Self::UnknownKey => "barcelona_api_key_not_found",
            Self::Uncovered(_) | Self::Digest | Self::Date | Self::Signature => {
                "barcelona_request_signature_invalid"
            }
        }
    }
}

pub fn request(
    req: &HttpRequest,
    body: &[u8],
    keys: &HashMap<String, PublicKey>,
    now: DateTime<Utc>,
) -> Result<(), Refused> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let auth = header("authorization").ok_or(Refused::Missing)?;
    let params = auth
        .strip_prefix("Signature ")
        .ok_or(Refused::Missing)
        .map(parse_params)??;
    let get = |k: &str| params.get(k).map(String::as_str);
    let key_id = get("keyId").ok_or(Refused::Malformed("no keyId"))?;
    let signature = get("signature").ok_or(Refused::Malformed("no signature"))?;
    if !matches!(get("algorithm"), None | Some("hs2019")) {
        return Err(Refused::Malformed("algorithm must be hs2019"));
    }
    let signed: Vec<String> = get("headers")
        .unwrap_or("(created)")
        .split(' ')
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if let Some(missing) = REQUIRED.iter().find(|r| !signed.iter().any(|s| s == *r)) {
        return Err(Refused::Uncovered(missing));
    }
    let key = keys.get(key_id).ok_or(Refused::UnknownKey)?;
    if header("digest") != Some(body_digest(body).as_str()) {
        return Err(Refused::Digest);
    }
    let date = header("date")
        .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
        .ok_or(Refused::Date)?;
    if (now - date.with_timezone(&Utc)).num_seconds().abs() > MAX_SKEW_SECS {
        return Err(Refused::Date);
    }
    let target = match req.uri().query() {
        Some(q) => format!("{}?{q}", req.uri().path()),
        None => req.uri().path().to_owned(),
    };
    let mut lines = Vec::with_capacity(signed.len());
    for name in &signed {
        let value = match name.as_str() {
            "(request-target)" => {
                format!("{} {target}", req.method().as_str().to_ascii_lowercase())
            }
            "(created)" => get("created")
                .ok_or(Refused::Malformed("(created) signed without created="))?
                .to_owned(),
            "(expires)" => get("expires")
                .ok_or(Refused::Malformed("(expires) signed without expires="))?
                .to_owned(),
            other => header(other)
                .ok_or(Refused::Malformed("a signed header is absent"))?
                .to_owned(),
        };
        lines.push(format!("{name}: {value}"));
    }
    if key.verify(lines.join("\n").as_bytes(), signature) {
        Ok(())
    } else {
        Err(Refused::Signature)
    }
}

/// `k1="v1",k2=v2,…` (quoted values hold no commas in this scheme: ids, header names, base64).
fn parse_params(s: &str) -> Result<HashMap<String, String>, Refused> {
    s.split(',')
        .map(|part| {
            let (k, v) = part
                .trim()
                .split_once('=')
                .ok_or(Refused::Malformed("parameter without ="))?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            Ok((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}
