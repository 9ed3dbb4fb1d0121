//! The fleet a simulator serves: generated deterministically from a seed, or read from an
//! inventory file. Vendor simulators render these neutral records in their own payload shapes.

use serde::{Deserialize, Serialize};

use crate::domain::SystemKind;

/// One server as the simulator knows it, in the vendor-neutral terms the gateway answers with.
/// `GET /_sim/inventory` returns these, so tests can compare the gateway's answer to the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimServer {
    /// Profile / service-profile / template name: what callers look up.
    pub name: String,
    pub serial_number: String,
    pub model: String,
    /// `on` or `off`.
    pub power_state: String,
    /// BMC IP (v4 or v6), as the gateway must report it.
    pub bmc_address: String,
    /// Extra BMC addresses the vendor reports that the gateway must NOT pick
    /// (link-local, `[::]`), rendered where the vendor would put them.
    #[serde(default)]
    pub decoy_bmc_addresses: Vec<String>,
    /// In vendor order; `boot` marks the NIC the vendor flags as first boot device.
    pub nics: Vec<SimNic>,
    /// False = a profile that exists but has no hardware assigned (OneView).
    #[serde(default = "yes")]
    pub assigned: bool,
    /// The NICs are known only to the server's own BMC, not to its manager (Intersight's
    /// standalone rack servers: no adapter inventory; their CIMC answers over Redfish).
    #[serde(default)]
    pub nics_from_bmc: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimNic {
    pub name: String,
    /// Lower-case colon form.
    pub mac: String,
    #[serde(default)]
    pub boot: bool,
}

impl SimServer {
    pub fn boot_mac(&self) -> Option<&str> {
        self.nics
            .iter()
            .find(|n| n.boot)
            .or_else(|| self.nics.first())
            .map(|n| n.mac.as_str())
    }
}

/// splitmix64: tiny, stable across releases (unlike `rand`'s StdRng), so a seed means the same
/// fleet forever.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Unique within a fleet of up to 4M servers (index and port pick the low 24 bits), while the
/// seed-derived mask makes different seeds give different MACs.
fn mac(prefix: [u8; 3], mask: u32, server: usize, port: usize) -> String {
    let low = ((server as u32).wrapping_mul(4).wrapping_add(port as u32) ^ mask) & 0x00ff_ffff;
    let [_, a, b, c] = low.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{a:02x}:{b:02x}:{c:02x}",
        prefix[0], prefix[1], prefix[2]
    )
}

/// Name prefix per system, so that the demo's names say where they live.
pub fn name_prefix(kind: SystemKind) -> &'static str {
    match kind {
        SystemKind::Oneview => "hpe-synergy",
        SystemKind::Ucsm => "ucs-sp",
        SystemKind::UcsCentral => "ucs-central",
        SystemKind::Ome => "dell-r650",
        SystemKind::Intersight => "intersight",
        SystemKind::Redfish => "rack",
    }
}

/// Simulated standalone BMCs (`kind = "redfish"`) get `127.0.3.1` … `127.0.3.64` (the
/// simulators' certificate names them); managed servers whose BMC is also simulated (for
/// `verify_bmc`) take `127.0.4.k`.
pub const MAX_REDFISH_BMCS: usize = 64;

/// The loopback address of the `n`-th (1-based) simulated standalone BMC.
pub fn redfish_bmc(n: usize) -> std::net::Ipv4Addr {
    let k = n.saturating_sub(1);
    std::net::Ipv4Addr::new(127, 0, 3 + (k / 250) as u8, (k % 250) as u8 + 1)
}

/// What a standalone server's BMC is, by position: each make's own way of numbering its
/// ComputerSystem and of exposing MACs (see [`crate::sim::redfish`]).
const RACK_MODELS: [&str; 6] = [
    "ProLiant DL360 Gen10 Plus",
    "PowerEdge R750",
    "UCSC-C240-M6SX",
    "SYS-120U-TNR",
    "ThinkSystem SR650 V2",
    "Mt.Jade",
];

/// Intersight servers that are standalone (1-based `n`): every fifth, at most
/// [`MAX_STANDALONE_CIMCS`], each with its CIMC on `127.0.2.k`.
pub fn standalone_cimc(n: usize) -> Option<std::net::Ipv4Addr> {
    let k = n / 5;
    (n.is_multiple_of(5) && (1..=MAX_STANDALONE_CIMCS).contains(&k))
        .then(|| std::net::Ipv4Addr::new(127, 0, 2, k as u8))
}

/// Simulated CIMCs get `127.0.2.1` … `127.0.2.16` (the simulators' certificate names them).
pub const MAX_STANDALONE_CIMCS: usize = 16;

/// `count` servers for one system. The same (kind, seed, count) always gives the same fleet.
pub fn generate(kind: SystemKind, seed: u64, count: usize) -> Vec<SimServer> {
    let salt = match kind {
        SystemKind::Oneview => 0x11,
        SystemKind::Ucsm => 0x22,
        SystemKind::UcsCentral => 0x44,
        SystemKind::Ome => 0x33,
        SystemKind::Intersight => 0x55,
        SystemKind::Redfish => 0x66,
    };
    let mut rng = Rng::new(seed ^ (salt << 56));
    let mask = (rng.next_u64() & 0x00ff_ffff) as u32;
    (0..count)
        .map(|i| generate_one(kind, i, mask, &mut rng))
        .collect()
}

fn generate_one(kind: SystemKind, i: usize, mask: u32, rng: &mut Rng) -> SimServer {
    let n = i + 1;
    let name = format!("{}-{n:03}", name_prefix(kind));
    let power_state = if rng.below(10) < 8 { "on" } else { "off" }.to_owned();
    let octet3 = (n / 250) as u8;
    let octet4 = (n % 250 + 2) as u8;
    match kind {
        SystemKind::Oneview => {
            // Virtual MACs from a OneView-style pool; two FlexNICs on each of two adapters.
            let ports = ["Mezz 3:1-a", "Mezz 3:2-a", "Flb 1:1-a", "Flb 1:2-a"];
            let nic_count = 2 + rng.below(3) as usize;
            let nics = (0..nic_count)
                .map(|p| SimNic {
                    name: ports[p].to_owned(),
                    mac: mac([0x9a, 0xa0, 0x22], mask, i, p),
                    boot: p == 1,
                })
                .collect();
            SimServer {
                name,
                serial_number: format!("MXQ{:07}", rng.below(10_000_000)),
                model: "Synergy 480 Gen10".into(),
                power_state,
                bmc_address: format!("10.10.{octet3}.{octet4}"),
                decoy_bmc_addresses: vec![format!("fe80::9aa0:22ff:fe{:02x}:{:04x}", octet3, n)],
                nics,
                assigned: true,
                nics_from_bmc: false,
            }
        }
        SystemKind::Ucsm | SystemKind::UcsCentral => {
            let nic_count = 2 + rng.below(3) as usize;
            let nics = (0..nic_count)
                .map(|p| SimNic {
                    name: format!("eth{p}"),
                    // Another Cisco OUI for Central's domains: no MAC shared with the UCSM fleet.
                    mac: if kind == SystemKind::Ucsm {
                        mac([0x00, 0x25, 0xb5], mask, i, p)
                    } else {
                        mac([0x00, 0x3a, 0x9c], mask, i, p)
                    },
                    // Boot policies do not always boot from the first vNIC.
                    boot: p == usize::from(n % 6 == 5),
                })
                .collect();
            SimServer {
                name,
                serial_number: format!("FCH{:04}7{:03}G", rng.below(10_000), rng.below(1000)),
                model: if n.is_multiple_of(3) {
                    "UCSC-C220-M5SX".into()
                } else {
                    "UCSB-B200-M5".into()
                },
                power_state,
                bmc_address: if kind == SystemKind::Ucsm {
                    format!("10.20.{octet3}.{octet4}")
                } else {
                    format!("10.40.{octet3}.{octet4}")
                },
                decoy_bmc_addresses: Vec::new(),
                nics,
                assigned: true,
                nics_from_bmc: false,
            }
        }
        SystemKind::Intersight => {
            // Every fifth (up to the 16th such) is a standalone rack server Intersight holds no
            // adapter inventory for: its NICs are known to its CIMC alone, whose simulator
            // listens on the BMC address (loopback, see `sim::intersight`).
            let standalone = standalone_cimc(n);
            let nic_count = 2 + rng.below(3) as usize;
            let nics = (0..nic_count)
                .map(|p| SimNic {
                    name: format!("eth{p}"),
                    mac: mac([0x00, 0x5d, 0x73], mask, i, p),
                    boot: p == 0,
                })
                .collect();
            SimServer {
                name,
                serial_number: format!("WZP{:05}{:03}X", rng.below(100_000), rng.below(1000)),
                model: if standalone.is_some() {
                    "UCSC-C240-M5SX".into()
                } else if n.is_multiple_of(2) {
                    "UCSX-210C-M6".into()
                } else {
                    "UCSC-C220-M6S".into()
                },
                power_state,
                bmc_address: match standalone {
                    Some(ip) => ip.to_string(),
                    None => format!("10.50.{octet3}.{octet4}"),
                },
                decoy_bmc_addresses: Vec::new(),
                nics,
                assigned: true,
                nics_from_bmc: standalone.is_some(),
            }
        }
        SystemKind::Redfish => {
            let model = RACK_MODELS[i % RACK_MODELS.len()];
            let nic_count = 2 + rng.below(3) as usize;
            let nics = (0..nic_count)
                .map(|p| SimNic {
                    name: format!("{}", p + 1),
                    mac: mac([0x52, 0x54, 0x0a], mask, i, p),
                    boot: p == 0,
                })
                .collect();
            SimServer {
                name,
                serial_number: format!("RK{:08}", rng.below(100_000_000)),
                model: model.into(),
                power_state,
                bmc_address: redfish_bmc(n).to_string(),
                decoy_bmc_addresses: Vec::new(),
                nics,
                assigned: true,
                nics_from_bmc: true,
            }
        }
        SystemKind::Ome => {
            let nic_count = 2 + 2 * rng.below(2) as usize;
            let nics = (0..nic_count)
                .map(|p| SimNic {
                    name: format!("NIC.Integrated.1-{}-1", p + 1),
                    mac: mac([0xb0, 0x26, 0x28], mask, i, p),
                    boot: p == 0,
                })
                .collect();
            // Every seventh iDRAC is IPv6-only, to keep that path honest.
            let bmc_address = if n.is_multiple_of(7) {
                format!("fd00:30::{n:x}")
            } else {
                format!("10.30.{octet3}.{octet4}")
            };
            SimServer {
                name,
                serial_number: format!("{:07X}", rng.below(0xFFF_FFFF)),
                model: "PowerEdge R650".into(),
                power_state,
                bmc_address,
                decoy_bmc_addresses: vec!["[::]".into()],
                nics,
                assigned: true,
                nics_from_bmc: false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        for kind in [SystemKind::Oneview, SystemKind::Ucsm, SystemKind::Ome] {
            let a = generate(kind, 7, 50);
            assert_eq!(a, generate(kind, 7, 50));
            assert_ne!(a, generate(kind, 8, 50));
            let mut macs: Vec<_> = a
                .iter()
                .flat_map(|s| s.nics.iter().map(|n| &n.mac))
                .collect();
            let total = macs.len();
            macs.sort();
            macs.dedup();
            assert_eq!(macs.len(), total, "MACs must be unique within a fleet");
            for s in &a {
                assert!(crate::domain::ServerName::parse(&s.name).is_ok());
                assert!(s.boot_mac().is_some());
            }
        }
    }
}
