//! One UCS XML API endpoint with its session: UCS Manager's `/nuova` and UCS Central's
//! `/xmlIM/central-mgr` speak the same methods (`aaaLogin`, `aaaRefresh`, `aaaLogout`,
//! `configResolve*`), the same cookies and the same errors inside HTTP 200 bodies.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::parse::{self, ApiError};
use super::xml::{self, escape_attr, Element};
use crate::domain::ServerName;
use crate::vendors::session::{Issued, Lifetime, SessionManager, SessionProtocol};
use crate::vendors::upstream::Upstream;
use crate::vendors::{retry_after, snippet, BackendError};

pub(crate) struct XmlApi {
    /// The system (or `central/domain`) errors and logs are attributed to.
    system: String,
    url: Url,
    upstream: Upstream,
    username: String,
    password: SecretString,
    /// One session shared by every lookup, refreshed within `outRefreshPeriod` (UCS limits
    /// sessions per user).
    sessions: SessionManager<SecretString>,
}

impl XmlApi {
    pub fn new(
        system: &str,
        url: Url,
        upstream: Upstream,
        username: &str,
        password: SecretString,
        login_backoff: Duration,
    ) -> Self {
        Self {
            system: system.to_owned(),
            url,
            upstream,
            username: username.to_owned(),
            password,
            sessions: SessionManager::new(system, login_backoff),
        }
    }

    /// One API call with the current session; on 552 one re-login and one retry.
    pub async fn query(
        &self,
        method: &str,
        body: impl Fn(&str) -> String,
    ) -> Result<Element, BackendError> {
        let session = self.sessions.session(self).await?;
        let first = self.post(method, body(session.expose_secret())).await?;
        let err = match first {
            Ok(root) => return Ok(root),
            Err(e) if e.is_session_invalid() => e,
            Err(e) => return Err(self.api_failure(method, e)),
        };
        tracing::info!(system = %self.system, method, error = %err, "UCS session no longer valid; logging in again");
        let session = self.sessions.renew(self, &session).await?;
        match self.post(method, body(session.expose_secret())).await? {
            Ok(root) => Ok(root),
            Err(e) if e.is_session_invalid() => {
                Err(self.auth_error(format!("{method} refused right after a new login: {e}")))
            }
            Err(e) => Err(self.api_failure(method, e)),
        }
    }

    /// `configResolveClass lsServer` filtered on the server side on `name` (any letter case,
    /// instances only); `None` when no profile can have that name (no call is made).
    /// `hierarchical`: with each profile's vNIC and IP children.
    pub async fn profiles_named(
        &self,
        name: &ServerName,
        hierarchical: bool,
    ) -> Result<Option<Element>, BackendError> {
        if !super::PROFILE_NAME_LEN.contains(&name.as_str().len()) {
            return Ok(None);
        }
        self.query("configResolveClass", |cookie| {
            super::find_profile_body(cookie, name, hierarchical)
        })
        .await
        .map(Some)
    }

    /// The filter names one profile: thousands are not an answer to it, and each match would
    /// cost further calls.
    pub fn check_match_count(
        &self,
        returned: usize,
        max: usize,
        name: &ServerName,
    ) -> Result<(), BackendError> {
        if returned <= max {
            return Ok(());
        }
        Err(self.protocol(
            "configResolveClass",
            format!(
                "{returned} service profiles for a filter on {name:?} (at most {max} expected)"
            ),
        ))
    }

    /// Ends the session, after detaching the connection pool (see [`Upstream::detach_pool`]).
    pub async fn logout(&self) {
        self.upstream.detach_pool();
        self.sessions.logout(self).await;
    }

    /// `aaaLogin` or `aaaRefresh`: both hand out a cookie and its refresh period.
    async fn open(&self, method: &str, body: String) -> Result<Issued<SecretString>, BackendError> {
        let root = self
            .post(method, body)
            .await?
            .map_err(|e| self.auth_error(format!("{method} refused: {e}")))?;
        let cookie = parse::login_cookie(&root).map_err(|d| self.protocol(method, d))?;
        let lifetime = match parse::refresh_period(&root) {
            Some(s) => Lifetime::RefreshWithin(Duration::from_secs(s)),
            None => Lifetime::Unbounded,
        };
        tracing::debug!(system = %self.system, method, "UCS session opened");
        Ok(Issued {
            session: SecretString::from(cookie),
            lifetime,
        })
    }

    /// POSTs one XML document. The outer `Result` is transport/HTTP/decoding; the inner one is
    /// the API's own verdict.
    async fn post(
        &self,
        method: &str,
        body: String,
    ) -> Result<Result<Element, ApiError>, BackendError> {
        let request = self
            .upstream
            .http()
            .post(self.url.clone())
            // What the API guide's examples and the SDKs send; UCS ignores it.
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        let reply = self.upstream.exchange(method, request).await?;
        let status = reply.status;
        let retry_after = retry_after(&reply.headers);
        let bytes = reply.body;
        if !status.is_success() {
            return Err(BackendError::Status {
                system: self.system.clone(),
                endpoint: self.endpoint_label(method),
                status: status.as_u16(),
                retry_after,
                detail: snippet(&bytes),
            });
        }
        let root = xml::parse(&bytes)
            .map_err(|e| self.protocol(method, format!("{e}; body starts: {}", snippet(&bytes))))?;
        if let Some(e) = parse::api_error(&root) {
            return Ok(Err(e));
        }
        if root.name != method {
            return Err(self.protocol(
                method,
                format!("answer root is <{}>, expected <{method}>", root.name),
            ));
        }
        Ok(Ok(root))
    }

    fn endpoint_label(&self, method: &str) -> String {
        format!("POST {} {method}", self.url.path())
    }

    pub fn protocol(&self, method: &str, detail: String) -> BackendError {
        BackendError::Protocol {
            system: self.system.clone(),
            endpoint: self.endpoint_label(method),
            detail,
        }
    }

    fn api_failure(&self, method: &str, e: ApiError) -> BackendError {
        self.protocol(method, format!("UCS API error {e}"))
    }

    fn auth_error(&self, detail: String) -> BackendError {
        BackendError::Auth {
            system: self.system.clone(),
            detail,
        }
    }
}

#[async_trait]
impl SessionProtocol for XmlApi {
    type Session = SecretString;

    async fn login(&self) -> Result<Issued<SecretString>, BackendError> {
        let body = format!(
            r#"<aaaLogin inName="{}" inPassword="{}" />"#,
            escape_attr(&self.username),
            escape_attr(self.password.expose_secret())
        );
        self.open("aaaLogin", body).await
    }

    /// `aaaRefresh` replaces the cookie (the old one answers 552 from then on).
    async fn refresh(
        &self,
        cookie: &SecretString,
    ) -> Option<Result<Issued<SecretString>, BackendError>> {
        let body = format!(
            r#"<aaaRefresh inCookie="{}" inName="{}" inPassword="{}" />"#,
            escape_attr(cookie.expose_secret()),
            escape_attr(&self.username),
            escape_attr(self.password.expose_secret())
        );
        Some(self.open("aaaRefresh", body).await)
    }

    async fn logout(&self, cookie: &SecretString) -> Result<(), BackendError> {
        let body = format!(
            r#"<aaaLogout inCookie="{}" />"#,
            escape_attr(cookie.expose_secret())
        );
        match self.post("aaaLogout", body).await? {
            Ok(_) => Ok(()),
            // 555 = the session was already gone: the goal is reached.
            Err(e) if e.code == "555" => Ok(()),
            Err(e) => Err(self.api_failure("aaaLogout", e)),
        }
    }
}
