//! The simulated UCSM management information tree, built once from the fleet: orgs, service
//! profiles with their vNICs and management IPs, blades/rack units with CIMC interfaces and
//! adapters. Indexed by dn, class and name so that the gateway's queries never scan the fleet.

use std::collections::HashMap;

use super::filter::{Filter, Hint};
use crate::sim::SimServer;
use crate::vendors::ucsm::xml::escape_attr;

pub struct Mo {
    pub class: &'static str,
    pub dn: String,
    pub rn: String,
    attrs: Vec<(&'static str, String)>,
    children: Vec<usize>,
    /// ` k="v"…` pre-escaped: answers are concatenations, not re-serialisations.
    rendered: String,
}

impl Mo {
    pub fn attr(&self, key: &str) -> Option<&str> {
        match key {
            "dn" => Some(&self.dn),
            "rn" => Some(&self.rn),
            _ => self
                .attrs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str()),
        }
    }
}

/// A UCS Manager domain as the Central simulator registers it.
pub struct CentralDomain {
    pub id: u32,
    pub name: String,
    pub address: String,
    pub profiles: Vec<CentralProfile>,
}

pub struct CentralProfile {
    pub dn: String,
    pub name: String,
    pub pn_dn: String,
    pub assoc_state: String,
}

#[derive(Default)]
pub struct Model {
    mos: Vec<Mo>,
    by_dn: HashMap<String, usize>,
    by_class: HashMap<&'static str, Vec<usize>>,
    by_name: HashMap<(&'static str, String), Vec<usize>>,
    by_folded_name: HashMap<(&'static str, String), Vec<usize>>,
}

/// How a server's CIMC address is published, so that every client path is exercised.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IpMode {
    /// `vnicIpV4PooledAddr` under the profile (the common case).
    Pooled,
    /// `vnicIpV4StaticAddr` under the profile.
    Static,
    /// The profile shows `0.0.0.0`; only the blade's `mgmt/if-1` `extIp` has it.
    ServerOnly,
}

const ORGS: [&str; 4] = [
    "org-root",
    "org-root/org-Prod",
    "org-root/org-Lab",
    "org-root/org-Edge",
];

impl Model {
    pub fn build(fleet: &[SimServer]) -> Self {
        let mut m = Self::default();
        m.add_infrastructure();
        let mut used: std::collections::HashSet<(usize, String)> = Default::default();
        let (mut blades, mut racks) = (0usize, 0usize);
        for (i, server) in fleet.iter().enumerate() {
            let n = i + 1;
            // Names are unique per org only: a repeated name lands in the next free org.
            let org = (0..ORGS.len())
                .map(|k| (n + k) % ORGS.len())
                .find(|o| !used.contains(&(*o, server.name.clone())))
                .unwrap_or(n % ORGS.len());
            used.insert((org, server.name.clone()));
            let pn_dn = server.assigned.then(|| {
                if server.model.starts_with("UCSC") {
                    racks += 1;
                    format!("sys/rack-unit-{racks}")
                } else {
                    blades += 1;
                    format!(
                        "sys/chassis-{}/blade-{}",
                        (blades - 1) / 8 + 1,
                        (blades - 1) % 8 + 1
                    )
                }
            });
            let mode = match n % 4 {
                0 => IpMode::ServerOnly,
                2 => IpMode::Static,
                _ => IpMode::Pooled,
            };
            let sp = m.add_profile(n, ORGS[org], server, pn_dn.as_deref(), mode);
            if let Some(pn) = &pn_dn {
                m.add_physical(n, pn, server, &m.mos[sp].dn.clone(), mode);
            }
        }
        // A template sharing a fleet name (in its own org): it must never be reported.
        if let Some(first) = fleet.first() {
            let org = m.add(
                Some("org-root"),
                "orgOrg",
                "org-Templates",
                vec![("name", "Templates".into())],
            );
            let _ = org;
            m.add(
                Some("org-root/org-Templates"),
                "lsServer",
                &format!("ls-{}", first.name),
                vec![
                    ("name", first.name.clone()),
                    ("type", "updating-template".into()),
                    ("assocState", "unassociated".into()),
                    ("pnDn", String::new()),
                ],
            );
        }
        m
    }

    /// UCS Central's view of its domains: one `computeSystem` per domain and one flat
    /// `lsServer` per service profile instance a domain holds, with the domain's address
    /// (`domain`), its DN (`domainDn`) and the profile's DN in the domain (`lsDn`); plus
    /// `extra` profiles Central alone knows (not deployed, or naming an unregistered domain).
    pub fn central(domains: &[CentralDomain], extra: &[(String, String)]) -> Self {
        let mut m = Self::default();
        m.add(
            None,
            "topSystem",
            "sys",
            vec![
                ("name", "ucs-central-sim".into()),
                ("address", "127.0.0.1".into()),
                ("mode", "stand-alone".into()),
                ("site", "sim".into()),
            ],
        );
        m.add(None, "computeResourceAggrEp", "compute", Vec::new());
        m.add_orgs();
        for d in domains {
            let domain_dn = format!("compute/sys-{}", d.id);
            m.add(
                Some("compute"),
                "computeSystem",
                &format!("sys-{}", d.id),
                vec![
                    ("address", d.address.clone()),
                    ("id", d.id.to_string()),
                    ("name", d.name.clone()),
                    ("operGroupDn", "domaingroup-root".into()),
                    ("productFamily", "ucs-classic".into()),
                    ("site", "sim".into()),
                    ("status", "Registered".into()),
                    ("totalPhysicalCnt", d.profiles.len().to_string()),
                ],
            );
            for p in &d.profiles {
                // Central's tree has one profile per DN: a same-named profile in a second
                // domain sits under that domain's node.
                let (parent, rn) = match p.dn.rsplit_once('/') {
                    Some((parent, rn)) if m.get(&p.dn).is_none() => (parent.to_owned(), rn),
                    _ => (domain_dn.clone(), p.dn.as_str()),
                };
                m.add(
                    Some(&parent),
                    "lsServer",
                    rn,
                    vec![
                        ("assocState", p.assoc_state.clone()),
                        ("domain", d.address.clone()),
                        ("domainDn", domain_dn.clone()),
                        ("domainGroup", "root".into()),
                        ("lsDn", p.dn.clone()),
                        ("name", p.name.clone()),
                        ("pnDn", p.pn_dn.clone()),
                        ("type", "instance".into()),
                    ],
                );
            }
        }
        for (name, domain) in extra {
            m.add(
                Some("org-root"),
                "lsServer",
                &format!("ls-{name}"),
                vec![
                    ("assocState", "unassociated".into()),
                    ("domain", domain.clone()),
                    ("domainDn", String::new()),
                    ("lsDn", String::new()),
                    ("name", name.clone()),
                    ("pnDn", String::new()),
                    ("type", "instance".into()),
                ],
            );
        }
        m
    }

    /// The service profile instances, as UCS Central learns them from this domain.
    pub fn instance_profiles(&self) -> Vec<CentralProfile> {
        self.class_query("lsServer", None)
            .into_iter()
            .map(|i| &self.mos[i])
            .filter(|mo| mo.attr("type") == Some("instance"))
            .map(|mo| CentralProfile {
                dn: mo.dn.clone(),
                name: mo.attr("name").unwrap_or_default().to_owned(),
                pn_dn: mo.attr("pnDn").unwrap_or_default().to_owned(),
                assoc_state: mo.attr("assocState").unwrap_or_default().to_owned(),
            })
            .collect()
    }

    fn add_infrastructure(&mut self) {
        self.add(
            None,
            "topSystem",
            "sys",
            vec![
                ("name", "ucs-sim".into()),
                ("address", "127.0.0.1".into()),
                ("mode", "cluster".into()),
                ("site", "sim".into()),
                ("owner", "inventory-gateway".into()),
            ],
        );
        for (id, ip) in [("A", "127.0.0.2"), ("B", "127.0.0.3")] {
            self.add(
                Some("sys"),
                "networkElement",
                &format!("switch-{id}"),
                vec![
                    ("id", id.into()),
                    ("oobIfIp", ip.into()),
                    ("model", "UCS-FI-6454".into()),
                    ("serial", format!("FDO2{id}SIM")),
                    ("operability", "operable".into()),
                ],
            );
        }
        self.add_orgs();
    }

    /// `org-root` and its sub-orgs: where profiles live, in UCS Manager and in UCS Central.
    fn add_orgs(&mut self) {
        self.add(None, "orgOrg", "org-root", vec![("name", "root".into())]);
        for org in &ORGS[1..] {
            let rn = org.trim_start_matches("org-root/");
            self.add(
                Some("org-root"),
                "orgOrg",
                rn,
                vec![("name", rn["org-".len()..].into())],
            );
        }
    }

    fn add_profile(
        &mut self,
        n: usize,
        org: &str,
        s: &SimServer,
        pn_dn: Option<&str>,
        mode: IpMode,
    ) -> usize {
        let assoc = if pn_dn.is_some() {
            "associated"
        } else {
            "unassociated"
        };
        let (ext_state, pool) = match mode {
            IpMode::Pooled => ("pooled", "ext-mgmt"),
            IpMode::Static => ("static", ""),
            IpMode::ServerOnly => ("none", ""),
        };
        let sp = self.add(
            Some(org),
            "lsServer",
            &format!("ls-{}", s.name),
            vec![
                ("agentPolicyName", String::new()),
                (
                    "assignState",
                    if pn_dn.is_some() {
                        "assigned"
                    } else {
                        "unassigned"
                    }
                    .into(),
                ),
                ("assocState", assoc.into()),
                ("bootPolicyName", "pxe-lan".into()),
                ("configState", "applied".into()),
                ("descr", String::new()),
                ("extIPPoolName", pool.into()),
                ("extIPState", ext_state.into()),
                ("identPoolName", "uuid-pool".into()),
                ("intId", (400_000 + n).to_string()),
                ("name", s.name.clone()),
                ("operBootPolicyName", format!("{org}/boot-policy-pxe-lan")),
                (
                    "operState",
                    if pn_dn.is_some() {
                        "ok"
                    } else {
                        "unassociated"
                    }
                    .into(),
                ),
                ("owner", "management".into()),
                ("pnDn", pn_dn.unwrap_or("").into()),
                ("policyLevel", "0".into()),
                ("policyOwner", "local".into()),
                ("srcTemplName", String::new()),
                ("type", "instance".into()),
                ("usrLbl", String::new()),
                ("uuid", uuid_for(n)),
            ],
        );
        let sp_dn = self.mos[sp].dn.clone();
        let derived = derived_index(n, s);
        // Reverse document order: clients must sort by `order`, not trust the listing.
        for (p, nic) in s.nics.iter().enumerate().rev() {
            let addr = if derived == Some(p) {
                "derived".to_owned()
            } else {
                nic.mac.to_ascii_uppercase()
            };
            let equipment = pn_dn
                .map(|pn| format!("{pn}/adaptor-1/host-eth-{}", p + 1))
                .unwrap_or_default();
            let vnic = self.add(
                Some(&sp_dn),
                "vnicEther",
                &format!("ether-{}", nic.name),
                vec![
                    ("addr", addr.clone()),
                    ("adminVcon", "any".into()),
                    (
                        "bootDev",
                        if nic.boot { "enabled" } else { "disabled" }.into(),
                    ),
                    ("equipmentDn", equipment),
                    (
                        "identPoolName",
                        if derived == Some(p) { "" } else { "mac-pool-a" }.into(),
                    ),
                    ("instType", "manual".into()),
                    ("mtu", "1500".into()),
                    ("name", nic.name.clone()),
                    ("operOrder", (p + 1).to_string()),
                    ("order", (p + 1).to_string()),
                    ("owner", "logical".into()),
                    ("purpose", "general".into()),
                    ("switchId", if p % 2 == 0 { "A" } else { "B" }.into()),
                    ("type", "ether".into()),
                ],
            );
            let vnic_dn = self.mos[vnic].dn.clone();
            self.add(
                Some(&vnic_dn),
                "vnicEtherIf",
                "if-default",
                vec![
                    ("addr", addr),
                    ("defaultNet", "yes".into()),
                    ("name", "default".into()),
                    ("vnet", "1".into()),
                ],
            );
        }
        let (pooled_addr, static_addr) = match mode {
            IpMode::Pooled => (s.bmc_address.clone(), None),
            IpMode::Static => ("0.0.0.0".to_owned(), Some(s.bmc_address.clone())),
            IpMode::ServerOnly => ("0.0.0.0".to_owned(), None),
        };
        self.add(
            Some(&sp_dn),
            "vnicIpV4PooledAddr",
            "ipv4-pooled-addr",
            vec![
                ("addr", pooled_addr),
                (
                    "defGw",
                    if mode == IpMode::Pooled {
                        "10.20.0.1"
                    } else {
                        "0.0.0.0"
                    }
                    .into(),
                ),
                ("name", pool.into()),
                (
                    "subnet",
                    if mode == IpMode::Pooled {
                        "255.255.0.0"
                    } else {
                        "0.0.0.0"
                    }
                    .into(),
                ),
            ],
        );
        if let Some(addr) = static_addr {
            self.add(
                Some(&sp_dn),
                "vnicIpV4StaticAddr",
                "ipv4-static-addr",
                vec![
                    ("addr", addr),
                    ("defGw", "10.20.0.1".into()),
                    ("subnet", "255.255.0.0".into()),
                ],
            );
        }
        if n % 2 == 1 {
            // iSCSI vNICs also carry `addr="derived"`; they are not Ethernet NICs.
            self.add(
                Some(&sp_dn),
                "vnicIScsi",
                "iscsi-iscsi-a",
                vec![
                    ("addr", "derived".into()),
                    ("name", "iscsi-a".into()),
                    ("order", "11".into()),
                    ("type", "unknown".into()),
                    ("vnicName", "iscsi-a".into()),
                ],
            );
        }
        let power = if s.power_state == "on" { "up" } else { "down" };
        self.add(
            Some(&sp_dn),
            "lsPower",
            "power",
            vec![("state", power.into())],
        );
        if let Some(pn) = pn_dn {
            self.add(
                Some(&sp_dn),
                "lsBinding",
                "pn",
                vec![
                    ("assignedToDn", pn.into()),
                    ("name", "pn-binding".into()),
                    ("operState", "used".into()),
                    ("pnDn", pn.into()),
                ],
            );
        }
        sp
    }

    fn add_physical(&mut self, n: usize, pn: &str, s: &SimServer, sp_dn: &str, mode: IpMode) {
        let (parent, rn) = pn.rsplit_once('/').unwrap_or(("", pn));
        let rack = rn.starts_with("rack-unit");
        if !rack && !self.by_dn.contains_key(parent) {
            let id = parent.trim_start_matches("sys/chassis-");
            self.add(
                Some("sys"),
                "equipmentChassis",
                &format!("chassis-{id}"),
                vec![
                    ("id", id.into()),
                    ("model", "UCSB-5108-AC2".into()),
                    ("operState", "operable".into()),
                ],
            );
        }
        let id = rn.rsplit('-').next().unwrap_or("1").to_owned();
        let mut attrs = vec![
            ("adminPower", "policy".into()),
            ("assignedToDn", sp_dn.to_owned()),
            ("association", "associated".into()),
            ("availability", "unavailable".into()),
            ("model", s.model.clone()),
            ("name", String::new()),
            ("numOfAdaptors", "1".into()),
            ("operPower", s.power_state.clone()),
            ("operState", "ok".into()),
            ("presence", "equipped".into()),
            ("serial", s.serial_number.clone()),
            ("usrLbl", String::new()),
            ("uuid", uuid_for(n)),
            ("vendor", "Cisco Systems Inc".into()),
        ];
        if rack {
            attrs.push(("id", id.clone()));
            attrs.push(("serverId", id));
        } else {
            let chassis = parent.trim_start_matches("sys/chassis-").to_owned();
            attrs.push(("chassisId", chassis.clone()));
            attrs.push(("slotId", id.clone()));
            attrs.push(("serverId", format!("{chassis}/{id}")));
        }
        let class = if rack {
            "computeRackUnit"
        } else {
            "computeBlade"
        };
        self.add(Some(parent), class, rn, attrs);
        let subject = if rack { "server" } else { "blade" };
        self.add(
            Some(pn),
            "mgmtController",
            "mgmt",
            vec![("subject", subject.into())],
        );
        // With a profile IP, the CIMC also keeps its physical ext-mgmt address: a client that
        // prefers it over the profile's (as Cisco's KVM launcher does not) is caught out.
        let ext_ip = match mode {
            IpMode::ServerOnly => s.bmc_address.clone(),
            _ => format!("10.21.{}.{}", (n / 250) % 256, n % 250 + 2),
        };
        self.add(
            Some(&format!("{pn}/mgmt")),
            "mgmtIf",
            "if-1",
            vec![
                ("adminState", "enable".into()),
                ("extGw", "10.20.0.1".into()),
                ("extIp", ext_ip),
                ("extMask", "255.255.0.0".into()),
                ("id", "1".into()),
                (
                    "mac",
                    format!("00:25:b5:ff:{:02x}:{:02x}", (n >> 8) & 0xff, n & 0xff),
                ),
                ("subject", subject.into()),
            ],
        );
        let adaptor = format!("{pn}/adaptor-1");
        self.add(
            Some(pn),
            "adaptorUnit",
            "adaptor-1",
            vec![
                ("id", "1".into()),
                ("model", "UCSB-MLOM-40G-04".into()),
                ("serial", format!("FCH{n:07}A")),
            ],
        );
        for (p, nic) in s.nics.iter().enumerate() {
            self.add(
                Some(&adaptor),
                "adaptorHostEthIf",
                &format!("host-eth-{}", p + 1),
                vec![
                    ("id", (p + 1).to_string()),
                    ("mac", nic.mac.to_ascii_uppercase()),
                    ("name", nic.name.clone()),
                    ("operState", "up".into()),
                    ("vnicDn", format!("{sp_dn}/ether-{}", nic.name)),
                ],
            );
        }
    }

    fn add(
        &mut self,
        parent: Option<&str>,
        class: &'static str,
        rn: &str,
        attrs: Vec<(&'static str, String)>,
    ) -> usize {
        let dn = match parent {
            Some(p) => format!("{p}/{rn}"),
            None => rn.to_owned(),
        };
        let mut rendered = String::new();
        for (k, v) in &attrs {
            rendered.push_str(&format!(" {k}=\"{}\"", escape_attr(v)));
        }
        let idx = self.mos.len();
        let name = attrs
            .iter()
            .find(|(k, _)| *k == "name")
            .map(|(_, v)| v.clone());
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            self.by_folded_name
                .entry((class, name.to_ascii_lowercase()))
                .or_default()
                .push(idx);
            self.by_name.entry((class, name)).or_default().push(idx);
        }
        if let Some(p) = parent.and_then(|p| self.by_dn.get(p).copied()) {
            self.mos[p].children.push(idx);
        }
        self.by_dn.insert(dn.clone(), idx);
        self.by_class.entry(class).or_default().push(idx);
        self.mos.push(Mo {
            class,
            dn,
            rn: rn.to_owned(),
            attrs,
            children: Vec::new(),
            rendered,
        });
        idx
    }

    pub fn get(&self, dn: &str) -> Option<usize> {
        self.by_dn.get(dn).copied()
    }

    #[cfg(test)]
    pub fn mo(&self, idx: usize) -> &Mo {
        &self.mos[idx]
    }

    /// Objects of `class` (abstract classes expand to their concrete ones) that pass `filter`.
    pub fn class_query(&self, class: &str, filter: Option<&Filter>) -> Vec<usize> {
        let mut out = Vec::new();
        for concrete in concrete_classes(class) {
            let candidates: &[usize] = match filter.and_then(Filter::hint) {
                Some(Hint::Name(name)) => self
                    .by_name
                    .get(&(*concrete, name.to_owned()))
                    .map_or(&[], Vec::as_slice),
                Some(Hint::FoldedName(folded)) => self
                    .by_folded_name
                    .get(&(*concrete, folded))
                    .map_or(&[], Vec::as_slice),
                None => self.by_class.get(concrete).map_or(&[], Vec::as_slice),
            };
            out.extend(
                candidates
                    .iter()
                    .copied()
                    .filter(|i| self.passes(*i, filter)),
            );
        }
        out
    }

    /// Children (or all descendants) of `dn` of `class` (any class when `None`) passing `filter`.
    pub fn children_query(
        &self,
        dn: &str,
        class: Option<&str>,
        filter: Option<&Filter>,
        recursive: bool,
    ) -> Vec<usize> {
        let classes = class.map(concrete_classes);
        let mut out = Vec::new();
        let mut stack: Vec<usize> = self
            .get(dn)
            .map(|i| self.mos[i].children.iter().rev().copied().collect())
            .unwrap_or_default();
        while let Some(i) = stack.pop() {
            let mo = &self.mos[i];
            if classes.is_none_or(|cs| cs.contains(&mo.class)) && self.passes(i, filter) {
                out.push(i);
            }
            if recursive {
                stack.extend(mo.children.iter().rev().copied());
            }
        }
        out
    }

    fn passes(&self, idx: usize, filter: Option<&Filter>) -> bool {
        let mo = &self.mos[idx];
        filter.is_none_or(|f| f.matches(&|p| mo.attr(p)))
    }

    /// Appends the object: flat with its `dn`, or (hierarchical) with its subtree nested,
    /// children carrying only their `rn`, as UCSM does.
    pub fn render(&self, idx: usize, hierarchical: bool, out: &mut String) {
        self.render_inner(idx, hierarchical, true, out);
    }

    fn render_inner(&self, idx: usize, hierarchical: bool, top: bool, out: &mut String) {
        let mo = &self.mos[idx];
        out.push('<');
        out.push_str(mo.class);
        let (key, value) = if top { ("dn", &mo.dn) } else { ("rn", &mo.rn) };
        out.push_str(&format!(" {key}=\"{}\"", escape_attr(value)));
        out.push_str(&mo.rendered);
        if hierarchical && !mo.children.is_empty() {
            out.push('>');
            for c in &mo.children {
                self.render_inner(*c, true, false, out);
            }
            out.push_str(&format!("</{}>", mo.class));
        } else {
            out.push_str("/>");
        }
    }
}

fn concrete_classes(class: &str) -> &'static [&'static str] {
    const KNOWN: &[&str] = &[
        "topSystem",
        "networkElement",
        "orgOrg",
        "lsServer",
        "vnicEther",
        "vnicEtherIf",
        "vnicIpV4PooledAddr",
        "vnicIpV4StaticAddr",
        "vnicIScsi",
        "lsPower",
        "lsBinding",
        "equipmentChassis",
        "computeBlade",
        "computeRackUnit",
        "mgmtController",
        "mgmtIf",
        "adaptorUnit",
        "adaptorHostEthIf",
        "computeResourceAggrEp",
        "computeSystem",
    ];
    match class {
        "vnicIpV4Addr" => &["vnicIpV4PooledAddr", "vnicIpV4StaticAddr"],
        "computePhysical" | "computeItem" => &["computeBlade", "computeRackUnit"],
        other => KNOWN
            .iter()
            .position(|k| *k == other)
            .map_or(&[], |i| std::slice::from_ref(&KNOWN[i])),
    }
}

/// Every fifth server has its second vNIC on the adapter's burned-in MAC.
fn derived_index(n: usize, s: &SimServer) -> Option<usize> {
    (n.is_multiple_of(5) && s.assigned && s.nics.len() > 1).then_some(1)
}

fn uuid_for(n: usize) -> String {
    format!("47ffb12d-8d4c-4383-0000-{n:012x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SystemKind;
    use crate::sim::fleet;
    use crate::vendors::ucsm::xml::parse;

    #[test]
    fn tree_is_indexed_and_renders_as_ucsm_does() {
        let fleet = fleet::generate(SystemKind::Ucsm, 7, 20);
        let m = Model::build(&fleet);
        let sp = m.class_query(
            "lsServer",
            Some(
                &Filter::from_element(
                    &parse(br#"<eq property="name" value="ucs-sp-004"/>"#).unwrap(),
                )
                .unwrap(),
            ),
        );
        assert_eq!(sp.len(), 1);
        let mut out = String::new();
        m.render(sp[0], true, &mut out);
        let root = parse(out.as_bytes()).unwrap();
        assert_eq!(root.attr("dn"), Some("org-root/ls-ucs-sp-004"));
        assert!(root
            .children
            .iter()
            .all(|c| c.attr("dn").is_none() && c.attr("rn").is_some()));
        let vnics = m.children_query(&m.mo(sp[0]).dn, Some("vnicEther"), None, false);
        assert_eq!(vnics.len(), fleet[3].nics.len());
        let ips = m.children_query(&m.mo(sp[0]).dn, Some("vnicIpV4Addr"), None, false);
        assert_eq!(
            m.mo(ips[0]).attr("addr"),
            Some("0.0.0.0"),
            "n=4 publishes no profile IP"
        );
        let pn = m.mo(sp[0]).attr("pnDn").unwrap().to_owned();
        let mgmt = m.get(&format!("{pn}/mgmt/if-1")).unwrap();
        assert_eq!(
            m.mo(mgmt).attr("extIp"),
            Some(fleet[3].bmc_address.as_str())
        );
        // The template with the first server's name exists but is not an instance.
        assert_eq!(
            m.class_query(
                "lsServer",
                Some(
                    &Filter::from_element(
                        &parse(br#"<eq property="name" value="ucs-sp-001"/>"#).unwrap()
                    )
                    .unwrap()
                )
            )
            .len(),
            2
        );
        assert!(m.class_query("noSuchClass", None).is_empty());
    }
}
