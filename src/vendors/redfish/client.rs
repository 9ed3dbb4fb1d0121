//! Talking to many BMCs' Redfish services with one pooled client: a session per BMC
//! (`POST /redfish/v1/SessionService/Sessions` → `X-Auth-Token`, `DELETE` of its `Location` on
//! logout), HTTP Basic only on a BMC whose service root names no sessions, and no login ever
//! sent that the [`CredentialGuard`] holds back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::domain::BmcAddress;
use crate::resilience::refusals::{CredentialGuard, Verdict};
use crate::vendors::upstream::Upstream;
use crate::vendors::{retry_after, snippet, BackendError};

/// A login for BMCs, named as the configuration names it.
pub struct Credential {
    pub name: String,
    pub username: String,
    pub password: SecretString,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// One BMC and how to log into it.
#[derive(Debug, Clone)]
pub struct Target {
    pub address: BmcAddress,
    pub port: u16,
    pub credential: Arc<Credential>,
}

impl Target {
    pub fn host(&self) -> String {
        match &self.address {
            BmcAddress::Ip(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
            other => other.to_string(),
        }
    }
}

enum Auth {
    Session {
        token: SecretString,
        location: Option<String>,
    },
    Basic,
}

/// What a BMC's gate holds: how to authenticate, and the service root read on the way.
struct Login {
    auth: Auth,
    root: Value,
}

type Gate = Arc<tokio::sync::Mutex<Option<Arc<Login>>>>;

pub struct Client {
    /// The system's name: label of errors and exchanges.
    label: String,
    upstream: Upstream,
    scheme: String,
    guard: Arc<CredentialGuard>,
    gates: Mutex<HashMap<String, Gate>>,
    /// Per BMC without sessions: its requests go one at a time.
    basic: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Client {
    pub fn new(
        label: String,
        upstream: Upstream,
        scheme: String,
        guard: Arc<CredentialGuard>,
    ) -> Self {
        Self {
            label,
            upstream,
            scheme,
            guard,
            gates: Mutex::new(HashMap::new()),
            basic: Mutex::new(HashMap::new()),
        }
    }

    pub fn guard(&self) -> &CredentialGuard {
        &self.guard
    }

    pub fn base(&self, t: &Target) -> String {
        format!("{}://{}:{}", self.scheme, t.host(), t.port)
    }

    fn gate(&self, t: &Target) -> Gate {
        self.gates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(self.base(t))
            .or_default()
            .clone()
    }

    /// The BMC's service root (read when logging in).
    pub async fn root(&self, t: &Target) -> Result<Value, BackendError> {
        Ok(self.login(t, None).await?.root.clone())
    }

    /// The login in force for `t`, or a new one when there is none or `rejected` is the one in
    /// force (its session was refused).
    async fn login(
        &self,
        t: &Target,
        rejected: Option<&Arc<Login>>,
    ) -> Result<Arc<Login>, BackendError> {
        let gate = self.gate(t);
        let mut held = gate.lock().await;
        if let Some(current) = held.as_ref() {
            if rejected.is_none_or(|r| !Arc::ptr_eq(r, current)) {
                return Ok(current.clone());
            }
        }
        *held = None;
        let target_key = self.base(t);
        let credential = &t.credential.name;
        self.may_send(t)?;
        let root_url = format!("{target_key}/redfish/v1/");
        let root = self
            .send_json("GET /redfish/v1", self.upstream.http().get(&root_url))
            .await?;
        // Logins go one at a time while the credential is in doubt (see `refusals`); the verdict
        // is asked again right before the credential is sent, since logins before this one
        // (elsewhere, while this one waited) may have been refused.
        let _probe = self.guard.probe(credential).await;
        self.may_send(t)?;
        // A Sessions link that is not this service's own is ignored, not a reason to send the
        // credential on every request: DSP0266's fixed path is asked instead.
        let sessions = root
            .pointer("/Links/Sessions/@odata.id")
            .and_then(Value::as_str)
            .map(|p| {
                if same_service(p) {
                    p.to_owned()
                } else {
                    "/redfish/v1/SessionService/Sessions".to_owned()
                }
            })
            .or_else(|| {
                root.get("SessionService")
                    .is_some()
                    .then(|| "/redfish/v1/SessionService/Sessions".to_owned())
            });
        let auth = match sessions {
            Some(path) => self.open_session(t, &target_key, &path).await?,
            None => {
                // No sessions: HTTP Basic on every request. The Systems collection is the
                // login's check, so that a refusal is noticed (and remembered) here.
                let check = self
                    .upstream
                    .http()
                    .get(format!("{target_key}/redfish/v1/Systems"))
                    .basic_auth(
                        &t.credential.username,
                        Some(t.credential.password.expose_secret()),
                    );
                let outcome = self.send_json("GET /redfish/v1/Systems", check).await;
                self.judge(t, &outcome);
                outcome.map(|_| Auth::Basic)?
            }
        };
        self.guard.accepted(credential, &target_key);
        let login = Arc::new(Login { auth, root });
        *held = Some(login.clone());
        Ok(login)
    }

    /// Whether the credential may be sent to `t` now (the refused-credential rules).
    fn may_send(&self, t: &Target) -> Result<(), BackendError> {
        let credential = &t.credential.name;
        match self.guard.check(credential, &self.base(t)) {
            Verdict::Go => Ok(()),
            Verdict::RefusedHere { retry_in } => Err(self.auth_error(format!(
                "credential {credential:?} was refused by this BMC (or its answer to it is \
                 unknown); not sent again for {} s",
                retry_in.as_secs()
            ))),
            Verdict::Suspended {
                retry_in,
                refused_by,
            } => Err(self.auth_error(format!(
                "credential {credential:?} is suspended for every BMC for {} s more: \
                 {refused_by} BMCs refused it",
                retry_in.as_secs()
            ))),
        }
    }

    /// Records what an exchange that carried the credential says about it: refused (401), or
    /// an unknown outcome that may have counted as a failed login (no answer, 5xx, unreadable).
    fn judge<T>(&self, t: &Target, outcome: &Result<T, BackendError>) {
        let (credential, target) = (&t.credential.name, self.base(t));
        match outcome {
            Err(BackendError::Auth { .. }) => self.guard.refused(credential, &target),
            Err(
                BackendError::Timeout { .. }
                | BackendError::Protocol { .. }
                | BackendError::Status { status: 500.., .. },
            ) => self.guard.doubtful(credential, &target),
            _ => {}
        }
    }

    async fn open_session(&self, t: &Target, base: &str, path: &str) -> Result<Auth, BackendError> {
        let key = "POST /redfish/v1/SessionService/Sessions";
        let body = serde_json::json!({
            "UserName": t.credential.username,
            "Password": t.credential.password.expose_secret(),
        });
        let request = self
            .upstream
            .http()
            .post(format!("{base}{path}"))
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body);
        let reply = match self.upstream.exchange(key, request).await {
            Ok(reply) => reply,
            Err(e) => {
                let outcome: Result<(), BackendError> = Err(e.clone());
                self.judge(t, &outcome);
                return Err(e);
            }
        };
        // Some BMCs answer a bad login 400 or 403 rather than 401: a refusal all the same.
        if matches!(
            reply.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST
        ) {
            self.guard.refused(&t.credential.name, base);
            return Err(self.auth_error(format!(
                "{key}: HTTP {} for credential {:?}",
                reply.status.as_u16(),
                t.credential.name
            )));
        }
        if !reply.status.is_success() {
            if reply.status.is_server_error() {
                self.guard.doubtful(&t.credential.name, base);
            }
            return Err(self.status_error(key, &reply));
        }
        let token = reply
            .headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| self.protocol(key, "no X-Auth-Token in the answer"))?;
        let location = reply
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| l.strip_prefix(base).unwrap_or(l).to_owned())
            .filter(|l| same_service(l));
        Ok(Auth::Session {
            token: SecretString::from(token.to_owned()),
            location,
        })
    }

    /// `GET` of a path on the BMC's own service (`/redfish/v1/…`), authenticated; a refused
    /// session is replaced once.
    pub async fn get(&self, t: &Target, key: &str, path: &str) -> Result<Value, BackendError> {
        if !same_service(path.split('?').next().unwrap_or_default()) {
            return Err(self.protocol(key, &format!("not a path of this service: {path:?}")));
        }
        let url = format!("{}{path}", self.base(t));
        let mut login = self.login(t, None).await?;
        for attempt in 0..2 {
            if matches!(login.auth, Auth::Basic) {
                return self.get_basic(t, key, &url).await;
            }
            let request = self.authorized(t, &login, self.upstream.http().get(&url));
            match self.send_json(key, request).await {
                // The session was refused (expired, or the BMC restarted): one new login.
                Err(BackendError::Auth { .. }) if attempt == 0 => {
                    login = self.login(t, Some(&login)).await?;
                }
                other => return other,
            }
        }
        Err(self.auth_error(format!("{key}: refused")))
    }

    /// A request that carries the credential itself (HTTP Basic): one at a time per BMC, each
    /// only when the refused-credential rules allow it, each outcome judged as a login's.
    async fn get_basic(&self, t: &Target, key: &str, url: &str) -> Result<Value, BackendError> {
        let lock = self
            .basic
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(self.base(t))
            .or_default()
            .clone();
        let _one = lock.lock().await;
        self.may_send(t)?;
        let request = self.upstream.http().get(url).basic_auth(
            &t.credential.username,
            Some(t.credential.password.expose_secret()),
        );
        let outcome = self.send_json(key, request).await;
        self.judge(t, &outcome);
        if matches!(outcome, Err(BackendError::Auth { .. })) {
            self.gate(t).lock().await.take();
        }
        outcome
    }

    fn authorized(
        &self,
        t: &Target,
        login: &Login,
        request: reqwest::RequestBuilder,
    ) -> reqwest::RequestBuilder {
        let request = request.header(reqwest::header::ACCEPT, "application/json");
        match &login.auth {
            Auth::Session { token, .. } => request.header("X-Auth-Token", token.expose_secret()),
            Auth::Basic => request.basic_auth(
                &t.credential.username,
                Some(t.credential.password.expose_secret()),
            ),
        }
    }

    async fn send_json(
        &self,
        key: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, BackendError> {
        let reply = self
            .upstream
            .exchange(
                key,
                request.header(reqwest::header::ACCEPT, "application/json"),
            )
            .await?;
        // Only 401 says the login (or session) is refused; a 403 is a privilege the account
        // lacks on that resource.
        if reply.status == StatusCode::UNAUTHORIZED {
            return Err(self.auth_error(format!("{key}: HTTP {}", reply.status.as_u16())));
        }
        if !reply.status.is_success() {
            return Err(self.status_error(key, &reply));
        }
        serde_json::from_slice(&reply.body)
            .map_err(|e| self.protocol(key, &format!("not JSON ({e}): {}", snippet(&reply.body))))
    }

    /// Ends every open session (shutdown). Best effort.
    pub async fn logout(&self, targets: &[Target]) {
        self.upstream.detach_pool();
        for t in targets {
            let gate = self.gate(t);
            let Some(login) = gate.lock().await.take() else {
                continue;
            };
            if let Auth::Session {
                location: Some(location),
                ..
            } = &login.auth
            {
                let request = self.authorized(
                    t,
                    &login,
                    self.upstream
                        .http()
                        .delete(format!("{}{location}", self.base(t))),
                );
                if let Err(e) = self
                    .upstream
                    .exchange("DELETE /redfish/v1/SessionService/Sessions/{id}", request)
                    .await
                {
                    tracing::warn!(system = %self.label, bmc = %t.address, error = %e, "Redfish logout failed");
                }
            }
        }
    }

    fn auth_error(&self, detail: String) -> BackendError {
        BackendError::Auth {
            system: self.label.clone(),
            detail,
        }
    }

    fn status_error(&self, key: &str, reply: &crate::vendors::upstream::Reply) -> BackendError {
        BackendError::Status {
            system: self.label.clone(),
            endpoint: key.to_owned(),
            status: reply.status.as_u16(),
            retry_after: retry_after(&reply.headers),
            detail: snippet(&reply.body),
        }
    }

    pub fn protocol(&self, endpoint: &str, detail: &str) -> BackendError {
        BackendError::Protocol {
            system: self.label.clone(),
            endpoint: endpoint.to_owned(),
            detail: detail.to_owned(),
        }
    }
}

/// A path on the same Redfish service: the gateway never follows a link to another host.
pub fn same_service(path: &str) -> bool {
    path.starts_with("/redfish/v1/") && !path.contains("..") && !path.contains("//")
}
