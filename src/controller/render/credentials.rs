//! The BMC credential Secret: per-vendor accounts as the controller is given them, and the
//! Secret a host's `bmc.credentialsName` points at. Passwords never reach `Debug` output.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use secrecy::{ExposeSecret, SecretString};

use super::names::{check_dns_subdomain, secret_name};
use super::{owner_labels, RenderError};
use crate::controller::crd::GeneratorRequest;
use crate::domain::Vendor;

/// The BMC account for one vendor. The password is a [`SecretString`]: it never appears in
/// `Debug` output or logs.
#[derive(Clone, Debug)]
pub struct BmcCredentials {
    pub username: String,
    pub password: SecretString,
}

/// Per-vendor BMC credentials, as the controller is given them.
#[derive(Clone, Debug, Default)]
pub struct CredentialStore {
    by_vendor: BTreeMap<&'static str, BmcCredentials>,
}

impl CredentialStore {
    pub fn insert(&mut self, vendor: Vendor, creds: BmcCredentials) {
        self.by_vendor.insert(vendor.as_str(), creds);
    }

    pub fn get(&self, vendor: Vendor) -> Option<&BmcCredentials> {
        self.by_vendor.get(vendor.as_str())
    }

    /// Same vendors, usernames and passwords (compares the secrets without printing them).
    pub fn same_as(&self, other: &Self) -> bool {
        self.by_vendor.len() == other.by_vendor.len()
            && self.by_vendor.iter().all(|(k, v)| {
                other.by_vendor.get(k).is_some_and(|o| {
                    o.username == v.username
                        && o.password.expose_secret() == v.password.expose_secret()
                })
            })
    }
}

/// The BMC credential Secret. Its `Debug` shows the name only: the password never reaches a log.
#[derive(Clone, PartialEq)]
pub struct CredentialSecret(Secret);

impl CredentialSecret {
    pub fn name(&self) -> &str {
        self.0.metadata.name.as_deref().unwrap_or_default()
    }

    /// The object to send to the API server. Handle with care: it holds the password.
    pub fn into_secret(self) -> Secret {
        self.0
    }

    pub fn as_secret(&self) -> &Secret {
        &self.0
    }
}

impl fmt::Debug for CredentialSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialSecret")
            .field("name", &self.name())
            .field("data", &"[REDACTED]")
            .finish()
    }
}

/// The BMC credential Secret alone: what credential rotation re-applies for hosts that exist,
/// without asking the gateway again.
pub fn credential_secret(
    req: &GeneratorRequest,
    vendor: Vendor,
    creds: &CredentialStore,
) -> Result<CredentialSecret, RenderError> {
    let credentials = creds
        .get(vendor)
        .ok_or(RenderError::NoCredentials(vendor))?;
    let username = credentials.username.trim();
    let password = credentials.password.expose_secret().trim();
    if username.is_empty() || password.is_empty() {
        return Err(RenderError::EmptyCredentials(vendor));
    }
    let name = secret_name(vendor, &req.object_name);
    check_dns_subdomain(&name)?;
    Ok(CredentialSecret(Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(req.target_namespace.clone()),
            labels: Some(owner_labels(req)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([
            ("username".to_owned(), username.to_owned()),
            ("password".to_owned(), password.to_owned()),
        ])),
        ..Secret::default()
    }))
}
