//! The controller's only source of server facts: `GET /servers/{name}[?vendor=]` on the gateway,
//! over HTTP, with a bearer token and a per-request timeout.
//!
//! Every failure is classified once, here, so the reconcile loop only asks two questions:
//! [`GatewayError::is_permanent`] (the generator goes to `Failed`) and
//! [`GatewayError::retry_after`] (when to requeue while staying `Processing`).
//! Transient answers (5xx, 429, timeouts, connection errors) are retried a bounded number of times
//! inside [`GatewayClient::server`], honouring `Retry-After` up to a cap; a longer `Retry-After` is
//! returned to the caller instead of blocking a reconcile for it.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::domain::{ServerName, ServerRecord, Vendor};

#[derive(Debug, Clone)]
pub struct GatewayClientConfig {
    /// e.g. `http://inventory-gateway.infra.svc:8080/`.
    pub base_url: Url,
    /// Bearer token (scope `read`); `None` when the gateway runs without auth.
    pub token: Option<SecretString>,
    /// Per-request timeout (connect + answer).
    pub timeout: Duration,
    /// Attempts per lookup, including the first (at least 1).
    pub max_attempts: u32,
    /// First retry delay when the gateway gives no `Retry-After`; doubles per attempt.
    pub base_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for here: it is returned to the caller.
    pub max_wait: Duration,
}

impl GatewayClientConfig {
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            token: None,
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            base_backoff: Duration::from_millis(200),
            max_wait: Duration::from_secs(5),
        }
    }
}

/// The gateway's RFC 9457 problem body (the fields the controller uses).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Problem {
    #[serde(rename = "type", default)]
    pub type_uri: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub searched: Option<Vec<String>>,
    #[serde(default)]
    pub request_id: String,
}

/// A ServerRecord and the systems that did not answer (`unverified`; older gateways omit it,
/// which reads as "every system answered").
#[derive(Deserialize)]
struct Answer {
    #[serde(flatten)]
    record: ServerRecord,
    #[serde(default)]
    unverified: Vec<String>,
}

const UNASSIGNED_TYPE: &str = "urn:inventory-gateway:problem:profile-unassigned";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// 404: no configured system knows the name. Permanent.
    #[error("server {name} not found (searched: {})", if searched.is_empty() { "no system".to_owned() } else { searched.join(", ") })]
    NotFound {
        name: String,
        searched: Vec<String>,
        detail: String,
    },
    /// 409 ambiguous, or 400: the spec must change (e.g. add `server_vendor`). Permanent.
    #[error("gateway rejected the lookup of {name} ({status}): {detail}")]
    Rejected {
        name: String,
        status: u16,
        detail: String,
    },
    /// 409 profile-unassigned: the profile exists but has no hardware yet; may resolve itself.
    #[error("server {name} has a profile but no hardware assigned yet: {detail}")]
    Unassigned { name: String, detail: String },
    /// 401/403: the controller's token is wrong. Transient: fixing the token must not require
    /// touching every generator.
    #[error("gateway refused the controller's credentials ({status}); check the gateway token")]
    Unauthorized { status: u16 },
    /// 429, 5xx (502 upstream error, 503 unavailable, 504 upstream timeout). Transient.
    #[error("gateway answered {status} for {name}: {detail}")]
    Unavailable {
        name: String,
        status: u16,
        detail: String,
        retry_after: Option<Duration>,
    },
    /// No answer within the timeout. Transient.
    #[error("gateway did not answer within {0:?}")]
    Timeout(Duration),
    /// Connection refused, reset, DNS… Transient.
    #[error("cannot reach the gateway: {0}")]
    Transport(String),
    /// A 2xx whose body is not a ServerRecord, or an unexpected status. Transient (a gateway
    /// being rolled out may answer oddly for a moment).
    #[error("unexpected answer from the gateway: {0}")]
    Protocol(String),
    /// A 2xx whose `unverified` names systems that did not answer: the server might be known
    /// there too, so no host is created from it yet. Transient.
    #[error("server {name}: waiting for {} to answer (a host is created only from an answer every system gave)", systems.join(", "))]
    Unverified { name: String, systems: Vec<String> },
}

impl GatewayError {
    /// Permanent: retrying cannot help until the generator's spec changes.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::NotFound { .. } | Self::Rejected { .. })
    }

    /// What the gateway asked for (`Retry-After`), if anything.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct GatewayClient {
    http: reqwest::Client,
    config: GatewayClientConfig,
}

impl GatewayClient {
    pub fn new(config: GatewayClientConfig) -> Result<Self, GatewayError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!(
                "inventory-gateway-controller/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| GatewayError::Transport(e.to_string()))?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &GatewayClientConfig {
        &self.config
    }

    fn url(&self, name: &ServerName, vendor: Option<Vendor>) -> Result<Url, GatewayError> {
        let mut url = self.config.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| GatewayError::Protocol("the gateway URL cannot have a path".into()))?
            .pop_if_empty()
            .extend(["servers", name.as_str()]);
        if let Some(v) = vendor {
            url.query_pairs_mut().append_pair("vendor", v.as_str());
        }
        Ok(url)
    }

    /// Look a server up, retrying transient failures (bounded attempts, `Retry-After` honoured
    /// up to `max_wait`). Returns the last error when the attempts run out.
    pub async fn server(
        &self,
        name: &ServerName,
        vendor: Option<Vendor>,
    ) -> Result<ServerRecord, GatewayError> {
        let url = self.url(name, vendor)?;
        let attempts = self.config.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.once(&url, name).await {
                Ok(record) => return Ok(record),
                Err(e) => e,
            };
            if err.is_permanent() || attempt >= attempts {
                return Err(err);
            }
            let backoff = self
                .config
                .base_backoff
                .saturating_mul(1 << (attempt - 1).min(16));
            let wait = match err {
                // A bad token will not fix itself within a reconcile.
                GatewayError::Unauthorized { .. }
                | GatewayError::Unassigned { .. }
                | GatewayError::Unverified { .. } => return Err(err),
                _ => err.retry_after().unwrap_or(backoff).max(backoff),
            };
            if wait > self.config.max_wait {
                return Err(err);
            }
            tracing::debug!(server = %name, attempt, ?wait, error = %err, "gateway lookup failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn once(&self, url: &Url, name: &ServerName) -> Result<ServerRecord, GatewayError> {
        let mut req = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = &self.config.token {
            req = req.bearer_auth(token.expose_secret());
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let retry_after = parse_retry_after(resp.headers());
        if status.is_success() {
            let body = resp.bytes().await.map_err(|e| self.transport(e))?;
            let answer = serde_json::from_slice::<Answer>(&body)
                .map_err(|e| GatewayError::Protocol(format!("not a ServerRecord: {e}")))?;
            if !answer.unverified.is_empty() {
                return Err(GatewayError::Unverified {
                    name: name.to_string(),
                    systems: answer.unverified,
                });
            }
            return Ok(answer.record);
        }
        let body = resp.bytes().await.unwrap_or_default();
        let problem: Problem = serde_json::from_slice(&body).unwrap_or_else(|_| Problem {
            detail: String::from_utf8_lossy(&body).chars().take(200).collect(),
            ..Problem::default()
        });
        let name = name.to_string();
        let detail = if problem.detail.is_empty() {
            problem.title.clone()
        } else {
            problem.detail.clone()
        };
        Err(match status {
            StatusCode::NOT_FOUND => GatewayError::NotFound {
                name,
                searched: problem.searched.unwrap_or_default(),
                detail,
            },
            StatusCode::CONFLICT if problem.type_uri == UNASSIGNED_TYPE => {
                GatewayError::Unassigned { name, detail }
            }
            StatusCode::CONFLICT | StatusCode::BAD_REQUEST => GatewayError::Rejected {
                name,
                status: status.as_u16(),
                detail,
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => GatewayError::Unauthorized {
                status: status.as_u16(),
            },
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
                GatewayError::Unavailable {
                    name,
                    status: s.as_u16(),
                    detail,
                    retry_after,
                }
            }
            s => GatewayError::Protocol(format!("status {s}: {detail}")),
        })
    }

    fn transport(&self, e: reqwest::Error) -> GatewayError {
        if e.is_timeout() {
            GatewayError::Timeout(self.config.timeout)
        } else {
            // Without the URL: it is ours and adds nothing; the chain says why.
            let e = e.without_url();
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            GatewayError::Transport(msg)
        }
    }
}

/// `Retry-After` in delta-seconds (what the gateway sends). HTTP dates are not used by it.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_escape_nothing_they_do_not_need_to_and_add_the_vendor() {
        let c = GatewayClient::new(GatewayClientConfig::new(
            Url::parse("http://gw.example:8080/api/").unwrap(),
        ))
        .unwrap();
        let name = ServerName::parse("rack1.node_2:eth").unwrap();
        assert_eq!(
            c.url(&name, Some(Vendor::Hpe)).unwrap().as_str(),
            "http://gw.example:8080/api/servers/rack1.node_2:eth?vendor=hpe"
        );
        let c = GatewayClient::new(GatewayClientConfig::new(
            Url::parse("http://gw.example:8080").unwrap(),
        ))
        .unwrap();
        assert_eq!(
            c.url(&name, None).unwrap().as_str(),
            "http://gw.example:8080/servers/rack1.node_2:eth"
        );
    }

    #[test]
    fn the_token_is_not_in_debug_output() {
        let mut cfg = GatewayClientConfig::new(Url::parse("http://gw:1").unwrap());
        cfg.token = Some(SecretString::from("tok-very-secret"));
        let c = GatewayClient::new(cfg).unwrap();
        assert!(!format!("{c:?}").contains("tok-very-secret"));
    }

    #[test]
    fn classification() {
        let not_found = GatewayError::NotFound {
            name: "x".into(),
            searched: vec!["oneview-1".into(), "ome-1".into()],
            detail: String::new(),
        };
        assert!(not_found.is_permanent());
        assert!(not_found.to_string().contains("oneview-1, ome-1"));
        let busy = GatewayError::Unavailable {
            name: "x".into(),
            status: 503,
            detail: String::new(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(!busy.is_permanent());
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(3)));
        assert!(!GatewayError::Timeout(Duration::from_secs(1)).is_permanent());
        assert!(!GatewayError::Unauthorized { status: 401 }.is_permanent());
    }
}
