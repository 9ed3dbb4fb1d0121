//! The simulators and the demo: three simulated management systems on loopback and a gateway
//! configured against them, exactly as an operator would configure it against real appliances.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, ConfigError};
use crate::domain::SystemKind;
use crate::sim::{self, fleet, SimHandle, SimOptions, SimServer};

pub const SIM_USERNAME: &str = sim::DEFAULT_USERNAME;
pub const SIM_PASSWORD: &str = sim::DEFAULT_PASSWORD;
pub const KINDS: [SystemKind; 5] = [
    SystemKind::Oneview,
    SystemKind::Ucsm,
    SystemKind::UcsCentral,
    SystemKind::Ome,
    SystemKind::Intersight,
];

#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub seed: u64,
    pub servers: usize,
    /// Standalone Redfish BMCs (`kind = "redfish"`), at most [`fleet::MAX_REDFISH_BMCS`].
    pub redfish_bmcs: usize,
    /// JSON `{"oneview": [SimServer…], "ucsm": […], "ome": […]}`; replaces generation.
    pub inventory: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot read inventory file {path}: {reason}")]
    Inventory { path: PathBuf, reason: String },
    #[error("cannot start the {kind} simulator: {source}")]
    Sim {
        kind: SystemKind,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The fleet each simulator serves.
pub fn fleets(spec: &FleetSpec) -> Result<HashMap<SystemKind, Vec<SimServer>>, DemoError> {
    match &spec.inventory {
        None => Ok(KINDS
            .iter()
            .map(|&k| (k, fleet::generate(k, spec.seed, spec.servers)))
            .chain([(
                SystemKind::Redfish,
                fleet::generate(
                    SystemKind::Redfish,
                    spec.seed,
                    spec.redfish_bmcs.min(fleet::MAX_REDFISH_BMCS),
                ),
            )])
            .collect()),
        Some(path) => {
            let err = |reason: String| DemoError::Inventory {
                path: path.clone(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            let mut map: HashMap<SystemKind, Vec<SimServer>> =
                serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
            for k in KINDS {
                map.entry(k).or_default();
            }
            Ok(map)
        }
    }
}

/// Starts one simulator per (kind, port); port 0 picks a free one.
pub fn start_sims(
    fleets: &HashMap<SystemKind, Vec<SimServer>>,
    ports: &[(SystemKind, u16)],
    tls: bool,
) -> Result<Vec<SimHandle>, DemoError> {
    start_sims_on(fleets, ports, tls, IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// [`start_sims`] on another address (the `sim` subcommand's `--bind`).
pub fn start_sims_on(
    fleets: &HashMap<SystemKind, Vec<SimServer>>,
    ports: &[(SystemKind, u16)],
    tls: bool,
    bind: IpAddr,
) -> Result<Vec<SimHandle>, DemoError> {
    ports
        .iter()
        .map(|&(kind, port)| {
            let mut opts = SimOptions::new(kind, fleets.get(&kind).cloned().unwrap_or_default());
            opts.port = port;
            opts.tls = tls;
            opts.bind = bind;
            sim::start(opts).map_err(|source| DemoError::Sim { kind, source })
        })
        .collect()
}

/// A bearer token the demo (or a test) configures, with its scopes (`read`, `admin`).
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub name: String,
    pub token: SecretString,
    pub scopes: Vec<&'static str>,
}

impl TokenSpec {
    pub fn new(name: &str, token: SecretString, scopes: &[&'static str]) -> Self {
        Self {
            name: name.to_owned(),
            token,
            scopes: scopes.to_vec(),
        }
    }
}

/// The tokens file (hashes only) for `tokens`.
pub fn tokens_file_toml(tokens: &[TokenSpec]) -> String {
    let mut out = String::new();
    for t in tokens {
        let scopes: Vec<String> = t.scopes.iter().map(|s| format!("\"{s}\"")).collect();
        let _ = write!(
            out,
            "[[tokens]]\nname = \"{}\"\nhash = \"{}\"\nscopes = [{}]\n\n",
            t.name,
            crate::http::auth::hash_token(t.token.expose_secret()),
            scopes.join(", ")
        );
    }
    out
}

/// A gateway config (TOML text) pointing at running simulators, as an operator would write it.
/// With `tokens_file`, auth is on and reads it; without, auth is explicitly off.
pub fn gateway_config_toml(
    sims: &[SimHandle],
    port: u16,
    ca_bundle: Option<&Path>,
    tokens_file: Option<&Path>,
) -> String {
    let mut out = match tokens_file {
        Some(f) => format!("[auth]\ntokens_file = \"{}\"\n\n", f.display()),
        None => "[auth]\nenabled = false\n\n".to_owned(),
    };
    let _ = write!(out, "[server]\nlisten = \"127.0.0.1:{port}\"\n");
    out.push_str(&systems_toml(sims, ca_bundle));
    out
}

/// One `[[systems]]` entry per running simulator (and a UCS Central's `[systems.ucsm]`), as an
/// operator would write them.
pub fn systems_toml(sims: &[SimHandle], ca_bundle: Option<&Path>) -> String {
    let mut out = String::new();
    for s in sims {
        if s.kind == SystemKind::Redfish {
            redfish_toml(&mut out, s, ca_bundle);
            continue;
        }
        let _ = write!(
            out,
            "\n[[systems]]\nname = \"{kind}-sim\"\nkind = \"{kind}\"\nendpoint = \"{url}\"\n\
             timeout = \"10s\"\n",
            kind = s.kind,
            url = s.base_url.as_str().trim_end_matches('/'),
        );
        match &s.api_key {
            // Intersight signs with the key pair its simulator generated.
            Some(key) => {
                let _ = write!(
                    out,
                    "api_key_id = \"{}\"\nprivate_key = '''\n{}'''\n",
                    key.key_id,
                    key.private_pem.expose_secret().trim_end()
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "username = \"{SIM_USERNAME}\"\npassword = \"{SIM_PASSWORD}\""
                );
            }
        }
        if let Some(ca) = ca_bundle {
            let _ = writeln!(out, "ca_bundle = \"{}\"", ca.display());
        }
        // Central's domains and Intersight's CIMCs share one port on their own loopback
        // addresses: the fleet-wide login and how to reach the address the system reports.
        if let Some(member) = s.members.first() {
            let section = if s.kind == SystemKind::Intersight {
                "cimc"
            } else {
                "ucsm"
            };
            let _ = write!(
                out,
                "[systems.{section}]\nusername = \"{SIM_USERNAME}\"\npassword = \"{SIM_PASSWORD}\"\n\
                 scheme = \"{}\"\nport = {}\n",
                member.base_url.scheme(),
                member.addr.port()
            );
            if let Some(ca) = ca_bundle {
                let _ = writeln!(out, "ca_bundle = \"{}\"", ca.display());
            }
        }
    }
    out
}

/// A `redfish` system over the simulated BMCs: every other one named in the configuration,
/// the rest named by the `HostName` their BMC reports (the same names, so both ways resolve).
fn redfish_toml(out: &mut String, s: &SimHandle, ca_bundle: Option<&Path>) {
    let Some(first) = s.members.first() else {
        return;
    };
    let _ = write!(
        out,
        "\n[[systems]]\nname = \"redfish-sim\"\nkind = \"redfish\"\ntimeout = \"10s\"\n\
         [systems.bmc]\nusername = \"{SIM_USERNAME}\"\npassword = \"{SIM_PASSWORD}\"\n\
         scheme = \"{}\"\nport = {}\n",
        first.base_url.scheme(),
        first.addr.port()
    );
    if let Some(ca) = ca_bundle {
        let _ = writeln!(out, "ca_bundle = \"{}\"", ca.display());
    }
    for (i, (member, server)) in s.members.iter().zip(s.shared.fleet().iter()).enumerate() {
        let _ = write!(
            out,
            "[[systems.bmcs]]\naddress = \"{}\"\n",
            member.addr.ip()
        );
        if i % 2 == 0 {
            let _ = writeln!(out, "name = \"{}\"", server.name);
        }
    }
}

/// Writes the simulators' CA (when TLS is on), the tokens file (when `tokens` is not empty;
/// empty = auth off) and the gateway config into `dir`.
pub fn write_gateway_config(
    dir: &Path,
    sims: &[SimHandle],
    port: u16,
    tokens: &[TokenSpec],
) -> Result<(Config, PathBuf), DemoError> {
    write_gateway_config_with(dir, sims, port, tokens, "")
}

/// As [`write_gateway_config`], with `fleet` as the keys of the `[fleet]` table (e.g.
/// `enabled = false\n`); the fleet index's defaults otherwise.
pub fn write_gateway_config_with(
    dir: &Path,
    sims: &[SimHandle],
    port: u16,
    tokens: &[TokenSpec],
    fleet: &str,
) -> Result<(Config, PathBuf), DemoError> {
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text)
            .map(|_| path.clone())
            .map_err(|source| DemoError::Write { path, source })
    };
    std::fs::create_dir_all(dir).map_err(|source| DemoError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let ca = match sims.iter().find_map(|s| s.ca_pem.as_deref()) {
        Some(pem) => Some(write(dir.join("sim-ca.pem"), pem)?),
        None => None,
    };
    let tokens_file = if tokens.is_empty() {
        None
    } else {
        Some(write(dir.join("tokens.toml"), &tokens_file_toml(tokens))?)
    };
    let mut toml = gateway_config_toml(sims, port, ca.as_deref(), tokens_file.as_deref());
    if !fleet.is_empty() {
        let _ = write!(toml, "\n[fleet]\n{fleet}");
    }
    let path = write(dir.join("gateway.toml"), &toml)?;
    let config = Config::from_toml_str(&toml)?;
    Ok((config, path))
}
