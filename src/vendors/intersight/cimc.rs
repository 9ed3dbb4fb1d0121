//! A standalone server's own CIMC, read over Redfish for the NICs Intersight has no adapter
//! inventory for (what the replaced operator's fork does for such servers).
//!
//! One call when the CIMC honours `$expand` (DSP0266 §7.3): `GET /redfish/v1/Systems/<serial>/
//! EthernetInterfaces?$expand=.($levels=1)` (a CIMC's ComputerSystem id is the server's serial
//! number). A CIMC that refuses the parameter (501, or 400) is asked for the plain collection;
//! one that answers with links gets one GET per interface, concurrently, and only for links on
//! the same CIMC under `/redfish/v1/`: the gateway never follows a link to another host. HTTP Basic authentication (Redfish allows it on every request), so there is
//! no session to leak on thousands of BMCs.

use futures::future::try_join_all;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::FleetLogin;
use crate::domain::{BmcAddress, Nic};
use crate::vendors::redfish::read::interface_nic;
use crate::vendors::upstream::Upstream;
use crate::vendors::{retry_after, snippet, BackendError};

/// More interfaces than any server has: a longer list is a protocol failure, not a fan-out.
const MAX_INTERFACES: usize = 64;

pub struct Cimc {
    /// `<system>/cimc`: the label of its exchanges and errors.
    label: String,
    upstream: Upstream,
    username: String,
    password: SecretString,
    scheme: String,
    port: u16,
}

impl Cimc {
    /// `login` is the `[systems.cimc]` section, `password` its resolved password.
    pub fn new(
        label: String,
        upstream: Upstream,
        login: &FleetLogin,
        password: SecretString,
    ) -> Self {
        Self {
            label,
            upstream,
            username: login.username.clone(),
            password,
            scheme: login.scheme.clone(),
            port: login.port,
        }
    }

    fn base(&self, address: &BmcAddress) -> String {
        let host = address.to_string();
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        format!("{}://{host}:{}", self.scheme, self.port)
    }

    /// The host interfaces of the server whose CIMC is at `address`, in `Id` order.
    pub async fn nics(&self, address: &BmcAddress, serial: &str) -> Result<Vec<Nic>, BackendError> {
        let base = self.base(address);
        let collection = format!(
            "/redfish/v1/Systems/{}/EthernetInterfaces",
            crate::vendors::odata::encode_query_value(serial)
        );
        let key = "GET /redfish/v1/Systems/{serial}/EthernetInterfaces";
        // DSP0266: a service that does not implement a `$` query parameter answers 501 (some
        // answer 400): then the plain collection, and its members one by one.
        let body = match self
            .get(key, &format!("{base}{collection}?$expand=.($levels=1)"))
            .await
        {
            Err(BackendError::Status {
                status: 400 | 501, ..
            }) => self.get(key, &format!("{base}{collection}")).await?,
            other => other?,
        };
        let members = body
            .get("Members")
            .and_then(Value::as_array)
            .ok_or_else(|| self.protocol(key, "no Members array"))?;
        if members.len() > MAX_INTERFACES {
            return Err(self.protocol(
                key,
                &format!(
                    "{} interfaces (at most {MAX_INTERFACES} are read)",
                    members.len()
                ),
            ));
        }
        let member_key = "GET /redfish/v1/Systems/{serial}/EthernetInterfaces/{id}";
        let interfaces = try_join_all(members.iter().map(|m| async {
            if m.get("MACAddress").is_some() || m.get("PermanentMACAddress").is_some() {
                return Ok(m.clone());
            }
            let link = m
                .get("@odata.id")
                .and_then(Value::as_str)
                .filter(|l| l.starts_with("/redfish/v1/") && !l.contains(".."))
                .ok_or_else(|| self.protocol(key, "a member without a same-service @odata.id"))?;
            self.get(member_key, &format!("{base}{link}")).await
        }))
        .await?;
        let mut nics = interfaces
            .iter()
            .filter_map(|i| interface_nic(i).transpose())
            .collect::<Result<Vec<_>, String>>()
            .map_err(|d| self.protocol(member_key, &d))?;
        nics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nics)
    }

    async fn get(&self, key: &str, url: &str) -> Result<Value, BackendError> {
        let request = self
            .upstream
            .http()
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .basic_auth(&self.username, Some(self.password.expose_secret()));
        let reply = self.upstream.exchange(key, request).await?;
        let (status, headers, body) = (reply.status, reply.headers, reply.body);
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(BackendError::Auth {
                system: self.label.clone(),
                detail: format!("{key}: HTTP {}", status.as_u16()),
            });
        }
        if !status.is_success() {
            return Err(BackendError::Status {
                system: self.label.clone(),
                endpoint: key.to_owned(),
                status: status.as_u16(),
                retry_after: retry_after(&headers),
                detail: snippet(&body),
            });
        }
        serde_json::from_slice(&body)
            .map_err(|e| self.protocol(key, &format!("not JSON ({e}): {}", snippet(&body))))
    }

    fn protocol(&self, endpoint: &str, detail: &str) -> BackendError {
        BackendError::Protocol {
            system: self.label.clone(),
            endpoint: endpoint.to_owned(),
            detail: detail.to_owned(),
        }
    }

    pub fn detach_pool(&self) {
        self.upstream.detach_pool();
    }
}
