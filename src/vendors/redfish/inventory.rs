//! The BMCs of a `redfish` system and their credentials, from the configuration, its inventory
//! file and its credentials file, each checked once at start.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use secrecy::SecretString;
use serde::Deserialize;

use super::client::{Credential, Target};
use crate::config::{BmcEntry, FleetLogin, SystemConfig};
use crate::domain::{BmcAddress, ServerName};

/// The credential of `[systems.bmc]`, as `/fleet` names it.
pub const DEFAULT_CREDENTIAL: &str = "default";

/// One configured BMC.
#[derive(Debug, Clone)]
pub struct Bmc {
    /// The configured server name, if any (else the BMC's `HostName` or serial names it).
    pub name: Option<ServerName>,
    pub target: Target,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    #[serde(default)]
    bmcs: Vec<BmcEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedCredential {
    username: String,
    password: SecretString,
}

/// Every BMC of `sys`, in configuration order (inline entries, then the inventory file's).
pub fn resolve(
    sys: &SystemConfig,
    login: &FleetLogin,
    default_password: SecretString,
) -> Result<(Vec<Bmc>, Vec<String>), String> {
    let mut entries = sys.bmcs.clone();
    if let Some(path) = &sys.inventory_file {
        let file: InventoryFile = read_toml(path)?;
        entries.extend(file.bmcs);
    }
    let mut credentials: HashMap<String, Arc<Credential>> = HashMap::new();
    credentials.insert(
        DEFAULT_CREDENTIAL.to_owned(),
        Arc::new(Credential {
            name: DEFAULT_CREDENTIAL.to_owned(),
            username: login.username.clone(),
            password: default_password,
        }),
    );
    if let Some(path) = &sys.credentials_file {
        let named: HashMap<String, NamedCredential> = read_toml(path)?;
        for (name, c) in named {
            if name == DEFAULT_CREDENTIAL || c.username.is_empty() {
                return Err(format!(
                    "{}: credential {name:?}: `default` is [systems.bmc]'s, and a username is required",
                    path.display()
                ));
            }
            credentials.insert(
                name.clone(),
                Arc::new(Credential {
                    name,
                    username: c.username,
                    password: c.password,
                }),
            );
        }
    }
    let mut names = HashSet::new();
    let mut targets = HashSet::new();
    let mut bmcs = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let at = |what: &str| format!("BMC #{} ({}): {what}", i + 1, e.address);
        let address = BmcAddress::parse(&e.address).map_err(|x| at(&x.to_string()))?;
        if !address.is_usable() {
            return Err(at("not a usable address"));
        }
        let name = e
            .name
            .as_deref()
            .map(ServerName::parse)
            .transpose()
            .map_err(|x| at(&x.to_string()))?;
        if let Some(n) = &name {
            if !names.insert(n.folded()) {
                return Err(at(&format!("the name {n} is given twice")));
            }
        }
        let port = e.port.unwrap_or(login.port);
        if !targets.insert((address.clone(), port)) {
            return Err(at("listed twice"));
        }
        let credential_name = e.credentials.as_deref().unwrap_or(DEFAULT_CREDENTIAL);
        let credential = credentials.get(credential_name).cloned().ok_or_else(|| {
            at(&format!(
                "credentials {credential_name:?} are not in credentials_file"
            ))
        })?;
        bmcs.push(Bmc {
            name,
            target: Target {
                address,
                port,
                credential,
            },
        });
    }
    let mut credential_names: Vec<String> = credentials.into_keys().collect();
    credential_names.sort();
    Ok((bmcs, credential_names))
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Only the position and the parser's own words: toml's full message quotes the line,
    // which in a credentials file may hold a password.
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        format!(
            "{}: line {}: {}",
            path.display(),
            line.map_or_else(|| "?".into(), |l| l.to_string()),
            e.message()
        )
    })
}
