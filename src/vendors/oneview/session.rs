//! The OneView session: one per appliance, created on first use, shared by concurrent lookups,
//! renewed once on 401, deleted on logout.
//!
//! Appliances cap sessions per client IP (960) and per appliance (2400), so a login per lookup,
//! or one per concurrent lookup, would lock the gateway out; every login goes through one gate.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

use super::parse;
use crate::vendors::session::{Issued, Lease, Lifetime, SessionManager, SessionProtocol};
use crate::vendors::upstream::Upstream;
use crate::vendors::{retry_after, snippet, BackendError};

const LOGIN_PATH: &str = "/rest/login-sessions";
const LOGIN_KEY: &str = "POST /rest/login-sessions";
const LOGOUT_KEY: &str = "DELETE /rest/login-sessions";

/// The appliance default (`/rest/sessions/idle-timeout`, at most 24 h): a session idle that
/// long is gone, so it is replaced before use instead of costing a 401 round trip.
const IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

pub(super) struct Sessions {
    pub system: String,
    pub endpoint: Url,
    pub upstream: Upstream,
    pub username: String,
    pub password: SecretString,
    pub login_domain: Option<String>,
    pub api_version: u32,
    pub manager: SessionManager<SecretString>,
}

struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: bytes::Bytes,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginBody<'a> {
    user_name: &'a str,
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_login_domain: Option<&'a str>,
    /// Acknowledges a configured login banner; without it such appliances refuse the login.
    login_msg_ack: bool,
}

impl Sessions {
    /// `GET path` with the session, re-logging in once if the appliance answers 401.
    pub async fn get(&self, path: &str, key: &str) -> Result<bytes::Bytes, BackendError> {
        let session = self.manager.session(self).await?;
        let mut answer = self
            .send(Method::GET, path, Some(&session), None::<&()>, key)
            .await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            tracing::info!(system = %self.system, endpoint = key, "OneView session rejected; logging in again");
            let renewed = self.manager.renew(self, &session).await?;
            answer = self
                .send(Method::GET, path, Some(&renewed), None::<&()>, key)
                .await?;
            if answer.status == StatusCode::UNAUTHORIZED {
                // OneView answers 401 for missing privileges too; a second login will not help.
                return Err(BackendError::Auth {
                    system: self.system.clone(),
                    detail: format!(
                        "{key} answered 401 with a fresh session: {}",
                        summary(&answer.body)
                    ),
                });
            }
        }
        self.success(answer, key)
    }

    pub async fn logout(&self) {
        self.upstream.detach_pool();
        self.manager.logout(self).await;
    }

    async fn login_once(&self) -> Result<SecretString, BackendError> {
        tracing::debug!(system = %self.system, user = %self.username, "logging in to OneView");
        let body = LoginBody {
            user_name: &self.username,
            password: self.password.expose_secret(),
            auth_login_domain: self.login_domain.as_deref(),
            login_msg_ack: true,
        };
        let answer = self
            .send(Method::POST, LOGIN_PATH, None, Some(&body), LOGIN_KEY)
            .await?;
        match answer.status {
            s if s.is_success() => parse::session_id(&answer.body)
                .filter(|id| HeaderValue::from_str(id).is_ok())
                .map(SecretString::from)
                .ok_or_else(|| BackendError::Protocol {
                    system: self.system.clone(),
                    endpoint: LOGIN_KEY.into(),
                    detail: "login answer has no usable sessionID".into(),
                }),
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(BackendError::Auth {
                    system: self.system.clone(),
                    detail: format!(
                        "login as {:?} refused (HTTP {}): {}",
                        self.username,
                        answer.status.as_u16(),
                        summary(&answer.body)
                    ),
                })
            }
            _ => Err(self.status_error(answer, LOGIN_KEY)),
        }
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        session: Option<&Lease<SecretString>>,
        body: Option<&B>,
        key: &str,
    ) -> Result<Answer, BackendError> {
        self.send_with(method, path, session.map(|l| &**l), body, key)
            .await
    }

    async fn send_with<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        session: Option<&SecretString>,
        body: Option<&B>,
        key: &str,
    ) -> Result<Answer, BackendError> {
        let url = self.url(path, key)?;
        let mut req = self
            .upstream
            .http()
            .request(method, url)
            .header("X-API-Version", self.api_version)
            .header(ACCEPT, "application/json");
        if let Some(s) = session {
            let mut auth = HeaderValue::from_str(s.expose_secret())
                .map_err(|_| self.protocol(key, "session id is not a valid header value".into()))?;
            auth.set_sensitive(true);
            req = req.header("auth", auth);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let reply = self.upstream.exchange(key, req).await?;
        Ok(Answer {
            status: reply.status,
            retry_after: retry_after(&reply.headers),
            body: reply.body,
        })
    }

    /// Joins a relative OneView URI to the endpoint, refusing anything that would leave it
    /// (the session token travels with the request).
    fn url(&self, path: &str, key: &str) -> Result<Url, BackendError> {
        let url = self
            .endpoint
            .join(path)
            .map_err(|e| self.protocol(key, format!("bad URI {path:?}: {e}")))?;
        if url.origin() != self.endpoint.origin() {
            return Err(self.protocol(key, format!("URI {path:?} leaves the appliance")));
        }
        Ok(url)
    }

    fn success(&self, answer: Answer, key: &str) -> Result<bytes::Bytes, BackendError> {
        if answer.status.is_success() {
            return Ok(answer.body);
        }
        Err(self.status_error(answer, key))
    }

    fn status_error(&self, answer: Answer, key: &str) -> BackendError {
        BackendError::Status {
            system: self.system.clone(),
            endpoint: key.to_owned(),
            status: answer.status.as_u16(),
            retry_after: answer.retry_after,
            detail: summary(&answer.body),
        }
    }

    fn protocol(&self, key: &str, detail: String) -> BackendError {
        BackendError::Protocol {
            system: self.system.clone(),
            endpoint: key.to_owned(),
            detail,
        }
    }
}

fn summary(body: &[u8]) -> String {
    parse::error_summary(body).unwrap_or_else(|| snippet(body))
}

#[async_trait]
impl SessionProtocol for Sessions {
    type Session = SecretString;

    async fn login(&self) -> Result<Issued<SecretString>, BackendError> {
        Ok(Issued {
            session: self.login_once().await?,
            lifetime: Lifetime::Idle(IDLE_TIMEOUT),
        })
    }

    async fn logout(&self, session: &SecretString) -> Result<(), BackendError> {
        let empty = serde_json::Map::new();
        let answer = self
            .send_with(
                Method::DELETE,
                LOGIN_PATH,
                Some(session),
                Some(&empty),
                LOGOUT_KEY,
            )
            .await?;
        // 401: the session had already expired, which is what a logout wants.
        if answer.status.is_success() || answer.status == StatusCode::UNAUTHORIZED {
            return Ok(());
        }
        Err(self.status_error(answer, LOGOUT_KEY))
    }
}
