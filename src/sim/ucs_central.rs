//! Cisco UCS Central simulator: the XML API on `POST /xmlIM/central-mgr` (where ucscsdk
//! posts) over Central's own tree, fronting several UCS Manager simulators, the *domains*.
//! Each domain listens on its own loopback address (`127.0.1.k`, one port shared by all),
//! which is the address Central reports for it (`computeSystem.address`, `lsServer.domain`):
//! a gateway reaches a domain exactly as it would a real one, and a fault set on one domain's
//! `/_sim/faults` takes down that domain alone.
//!
//! The fleet is dealt out among the domains (server `i` to domain `i % domains`). Central also
//! holds two profiles no domain answers for: `<prefix>-undeployed` (a global service profile
//! deployed nowhere, `domain=""`) and `<prefix>-orphan` (naming an address Central does not
//! list among its domains).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;

use super::fleet::name_prefix;
use super::ucsm::model::{CentralDomain, Model};
use super::{serve, SimHandle, SimOptions, SimShared};
use crate::domain::SystemKind;

/// Domains get `127.0.1.1` … `127.0.1.MAX_DOMAINS` (the simulator's certificate names them).
pub const MAX_DOMAINS: usize = 16;
/// What Central's `orphan` profile names as its domain: never registered, never listening.
pub const ORPHAN_DOMAIN: &str = "127.0.1.250";
/// `outVersion` of a UCS Central login, in the form ucscsdk parses.
const VERSION: &str = "2.0(1c)";

pub fn domain_address(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, (k + 1) as u8)
}

pub fn undeployed_name() -> String {
    format!("{}-undeployed", name_prefix(SystemKind::UcsCentral))
}

pub fn orphan_name() -> String {
    format!("{}-orphan", name_prefix(SystemKind::UcsCentral))
}

pub fn start(opts: SimOptions) -> std::io::Result<SimHandle> {
    let count = opts.domains.clamp(1, MAX_DOMAINS);
    let listeners = domain_listeners(count)?;
    let mut members = Vec::with_capacity(count);
    let mut domains = Vec::with_capacity(count);
    for (k, listener) in listeners.into_iter().enumerate() {
        let fleet: Vec<_> = opts.fleet.iter().skip(k).step_by(count).cloned().collect();
        let model = Model::build(&fleet);
        let profiles = model.instance_profiles();
        let domain_opts = SimOptions {
            kind: SystemKind::Ucsm,
            fleet,
            ..opts.clone()
        };
        let shared = Arc::new(SimShared::new(
            SystemKind::Ucsm,
            domain_opts.fleet.clone(),
            &opts.username,
            &opts.password,
        ));
        let routes = super::ucsm::routes_with(shared.clone(), model, "/nuova", "4.2(3d)");
        members.push(serve(&domain_opts, listener, shared, routes, Vec::new())?);
        domains.push(CentralDomain {
            id: 1008 + k as u32,
            name: format!("ucs-domain-{}", k + 1),
            address: domain_address(k).to_string(),
            profiles,
        });
    }
    let extra = [
        (undeployed_name(), String::new()),
        (orphan_name(), ORPHAN_DOMAIN.to_owned()),
    ];
    let model = Model::central(&domains, &extra);
    let listener = TcpListener::bind(SocketAddr::new(opts.bind, opts.port))?;
    let shared = Arc::new(SimShared::new(
        SystemKind::UcsCentral,
        opts.fleet.clone(),
        &opts.username,
        &opts.password,
    ));
    let routes = super::ucsm::routes_with(shared.clone(), model, "/xmlIM/central-mgr", VERSION);
    serve(&opts, listener, shared, routes, members)
}

/// One listener per domain, all on the same port.
fn domain_listeners(count: usize) -> std::io::Result<Vec<TcpListener>> {
    let addrs: Vec<Ipv4Addr> = (0..count).map(domain_address).collect();
    super::shared_port_listeners(&addrs)
}
