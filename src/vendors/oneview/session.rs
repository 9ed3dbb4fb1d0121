//! The OneView session: one per appliance, created on first use, shared by concurrent lookups,
//! renewed once on 401, deleted on logout.
//!
//! Appliances cap sessions per client IP (960) and per appliance (2400), so a login per lookup,
//! or one per concurrent lookup, would lock the gateway out; every login goes through one gate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

use super::parse;
use crate::vendors::upstream::Upstream;
use crate::vendors::{retry_after, snippet, BackendError};

const LOGIN_PATH: &str = "/rest/login-sessions";
const LOGIN_KEY: &str = "POST /rest/login-sessions";
const LOGOUT_KEY: &str = "DELETE /rest/login-sessions";

pub(super) struct Sessions {
    pub system: String,
    pub endpoint: Url,
    pub upstream: Upstream,
    pub username: String,
    pub password: SecretString,
    pub login_domain: Option<String>,
    pub api_version: u32,
    pub state: State,
}

#[derive(Default)]
pub(super) struct State {
    current: RwLock<Option<Arc<Session>>>,
    /// Held while logging in or out, so concurrent lookups wait for one login instead of each
    /// starting their own.
    gate: tokio::sync::Mutex<Gate>,
    /// Login attempts finished (under the gate). A lookup that queued while one was running
    /// shares its failure instead of hammering a refusing appliance with its own attempt.
    attempts: AtomicU64,
    generation: AtomicU64,
}

#[derive(Default)]
struct Gate {
    last_error: Option<BackendError>,
}

struct Session {
    id: SecretString,
    /// Tells a 401 on this session apart from one on a session that was already renewed.
    generation: u64,
}

struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
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
    pub async fn get(&self, path: &str, key: &str) -> Result<Vec<u8>, BackendError> {
        let session = self.session(None).await?;
        let mut answer = self
            .send(Method::GET, path, Some(&session), None::<&()>, key)
            .await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            tracing::info!(system = %self.system, endpoint = key, "OneView session rejected; logging in again");
            let renewed = self.session(Some(session.generation)).await?;
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
        let _gate = self.state.gate.lock().await;
        let Some(session) = self.replace_current(None) else {
            return;
        };
        let empty = serde_json::Map::new();
        let sent = self
            .send(
                Method::DELETE,
                LOGIN_PATH,
                Some(&session),
                Some(&empty),
                LOGOUT_KEY,
            )
            .await;
        match sent {
            Ok(a) if a.status.is_success() => {
                tracing::debug!(system = %self.system, "OneView session closed")
            }
            Ok(a) => tracing::warn!(
                system = %self.system, status = a.status.as_u16(),
                "OneView logout refused: {}", summary(&a.body)
            ),
            Err(e) => tracing::warn!(system = %self.system, "OneView logout failed: {e}"),
        }
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.state.current.read().ok().and_then(|c| c.clone())
    }

    fn replace_current(&self, new: Option<Arc<Session>>) -> Option<Arc<Session>> {
        match self.state.current.write() {
            Ok(mut c) => std::mem::replace(&mut *c, new),
            Err(_) => None,
        }
    }

    /// The live session, logging in if there is none or if the live one is `stale` (a
    /// generation that just got a 401).
    async fn session(&self, stale: Option<u64>) -> Result<Arc<Session>, BackendError> {
        let usable = |s: &Arc<Session>| Some(s.generation) != stale;
        if let Some(s) = self.current().filter(usable) {
            return Ok(s);
        }
        let attempts_seen = self.state.attempts.load(Ordering::SeqCst);
        let mut gate = self.state.gate.lock().await;
        if let Some(s) = self.current().filter(usable) {
            return Ok(s);
        }
        if self.state.attempts.load(Ordering::SeqCst) != attempts_seen {
            if let Some(e) = &gate.last_error {
                return Err(duplicate(e));
            }
        }
        self.replace_current(None);
        let outcome = self.login().await;
        self.state.attempts.fetch_add(1, Ordering::SeqCst);
        match outcome {
            Ok(id) => {
                let generation = self.state.generation.fetch_add(1, Ordering::SeqCst) + 1;
                let session = Arc::new(Session { id, generation });
                self.replace_current(Some(session.clone()));
                gate.last_error = None;
                Ok(session)
            }
            Err(e) => {
                gate.last_error = Some(duplicate(&e));
                Err(e)
            }
        }
    }

    async fn login(&self) -> Result<SecretString, BackendError> {
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
        session: Option<&Session>,
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
            let mut auth = HeaderValue::from_str(s.id.expose_secret())
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
            body: reply.body.to_vec(),
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

    fn success(&self, answer: Answer, key: &str) -> Result<Vec<u8>, BackendError> {
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

/// Lookups that waited on a failed login each get their own copy of its error.
fn duplicate(e: &BackendError) -> BackendError {
    e.clone()
}
