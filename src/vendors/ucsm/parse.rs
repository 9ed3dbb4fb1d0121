//! Pure functions from UCSM XML API answers to the gateway's records. No I/O here, so every
//! rule (what is a NIC, which address is the CIMC, what is the boot MAC) is unit-tested on
//! real captures.

use std::collections::HashMap;

use chrono::Utc;

use super::xml::Element;
use crate::domain::{Bmc, BmcAddress, MacAddress, Nic, ServerRecord, SystemKind};

/// An API-level error: UCSM reports them inside an HTTP 200 body, either as attributes on the
/// method element or as an `<error>` root (unparseable request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub descr: String,
}

impl ApiError {
    /// "Authorization required": the cookie is missing, expired, refreshed away or logged out.
    pub fn is_session_invalid(&self) -> bool {
        self.code == "552"
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "errorCode {}: {}", self.code, self.descr)
    }
}

/// Any `errorCode` is an error, even "0" (ucsmsdk treats it so, and success never carries one).
pub fn api_error(root: &Element) -> Option<ApiError> {
    let code = root.attr("errorCode");
    if code.is_none() && root.name != "error" {
        return None;
    }
    Some(ApiError {
        code: code.unwrap_or("unknown").to_owned(),
        descr: root.attr("errorDescr").unwrap_or("").to_owned(),
    })
}

/// The session cookie from an `aaaLogin` or `aaaRefresh` answer (already checked for
/// `errorCode`).
pub fn login_cookie(root: &Element) -> Result<String, String> {
    if root.name != "aaaLogin" && root.name != "aaaRefresh" {
        return Err(format!("expected <aaaLogin>, got <{}>", root.name));
    }
    root.attr_nonempty("outCookie")
        .map(str::to_owned)
        .ok_or_else(|| format!("{} answer has no outCookie", root.name))
}

/// `outRefreshPeriod` in seconds: the session must be refreshed within it (60–172800 s per the
/// UCSM configuration guide). Missing or out of range: `None`.
pub fn refresh_period(root: &Element) -> Option<u64> {
    root.attr_nonempty("outRefreshPeriod")?
        .parse::<u64>()
        .ok()
        .filter(|s| (60..=172_800).contains(s))
}

/// Objects of a query answer: `<outConfigs>` (class, dns, children) or `<outConfig>` (dn).
pub fn out_configs(root: &Element) -> impl Iterator<Item = &Element> {
    root.children
        .iter()
        .filter(|c| c.name == "outConfigs" || c.name == "outConfig")
        .flat_map(|c| c.children.iter())
}

/// A vNIC's address as UCSM shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VnicAddr {
    Mac(MacAddress),
    /// The burned-in MAC of the adapter port: only the adapter's host-eth-if knows it.
    Derived,
    /// Empty, all-zero or unreadable: no MAC assigned (yet), so no NIC to report.
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vnic {
    pub name: String,
    pub addr: VnicAddr,
    pub order: Option<u32>,
    pub oper_order: Option<u32>,
    /// `bootDev="enabled"`: UCSM marks the vNICs its boot policy boots from.
    pub boot: bool,
    /// The adapter host-eth-if carrying this vNIC (empty until associated).
    pub equipment_dn: Option<String>,
    pub kind: Option<String>,
}

impl Vnic {
    pub fn from_element(el: &Element) -> Option<Self> {
        if el.name != "vnicEther" {
            return None;
        }
        let addr = match el.attr_nonempty("addr") {
            Some(a) if a.eq_ignore_ascii_case("derived") => VnicAddr::Derived,
            Some(a) => match MacAddress::parse(a) {
                Ok(mac) if !mac.is_zero() => VnicAddr::Mac(mac),
                _ => VnicAddr::Missing,
            },
            None => VnicAddr::Missing,
        };
        Some(Self {
            name: el.attr_nonempty("name")?.to_owned(),
            addr,
            // "unspecified" and anything else non-numeric leave the order to operOrder.
            order: el.attr("order").and_then(|o| o.parse().ok()),
            oper_order: el.attr("operOrder").and_then(|o| o.parse().ok()),
            boot: el.attr("bootDev") == Some("enabled"),
            equipment_dn: el.attr_nonempty("equipmentDn").map(str::to_owned),
            kind: el.attr_nonempty("type").map(str::to_owned),
        })
    }

    /// Admin `order` first (what the operator set), then the order UCSM assigned, then name.
    fn sort_key(&self) -> (u32, &str) {
        (
            self.order.or(self.oper_order).unwrap_or(u32::MAX),
            &self.name,
        )
    }
}

/// A service profile (`lsServer`) with the children the lookup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub dn: String,
    pub name: String,
    pub kind: Option<String>,
    /// The blade or rack unit it is associated with; `None` = unassociated.
    pub pn_dn: Option<String>,
    pub ext_ip_state: Option<String>,
    pub vnics: Vec<Vnic>,
    /// `(class, addr)` of the `vnicIpV4*Addr` children, in document order.
    pub ip_addrs: Vec<(String, String)>,
}

impl Profile {
    pub fn from_element(el: &Element) -> Option<Self> {
        if el.name != "lsServer" {
            return None;
        }
        let dn = el.attr_nonempty("dn")?.to_owned();
        let mut vnics = Vec::new();
        let mut ip_addrs = Vec::new();
        for child in &el.children {
            if let Some(v) = Vnic::from_element(child) {
                vnics.push(v);
            } else if child.name.starts_with("vnicIpV4") && child.name.ends_with("Addr") {
                if let Some(addr) = child.attr_nonempty("addr") {
                    ip_addrs.push((child.name.clone(), addr.to_owned()));
                }
            }
        }
        Some(Self {
            name: el.attr_nonempty("name")?.to_owned(),
            kind: el.attr_nonempty("type").map(str::to_owned),
            pn_dn: el.attr_nonempty("pnDn").map(str::to_owned),
            ext_ip_state: el.attr_nonempty("extIPState").map(str::to_owned),
            dn,
            vnics,
            ip_addrs,
        })
    }

    /// Templates share the class but are not servers.
    pub fn is_instance(&self) -> bool {
        self.kind.as_deref().is_none_or(|k| k == "instance")
    }

    /// The physical-side dns the record needs: the server itself, its out-of-band management
    /// interface (CIMC IP fallback) and the host-eth-ifs behind `derived` vNICs.
    pub fn hardware_dns(&self) -> Vec<String> {
        let Some(pn) = &self.pn_dn else {
            return Vec::new();
        };
        let mut dns = vec![pn.clone(), mgmt_if_dn(pn)];
        dns.extend(
            self.vnics
                .iter()
                .filter(|v| v.addr == VnicAddr::Derived)
                .filter_map(|v| v.equipment_dn.clone()),
        );
        dns
    }

    /// The profile's own management IP (pooled or static): what Cisco's KVM launcher uses first.
    /// The class `extIPState` names is preferred when both kinds are present.
    fn own_ip(&self) -> Option<BmcAddress> {
        let preferred = match self.ext_ip_state.as_deref() {
            Some("static") => "vnicIpV4StaticAddr",
            _ => "vnicIpV4PooledAddr",
        };
        let (first, rest): (Vec<_>, Vec<_>) = self
            .ip_addrs
            .iter()
            .partition(|(class, _)| class == preferred);
        first
            .into_iter()
            .chain(rest)
            .filter_map(|(_, addr)| BmcAddress::parse(addr).ok())
            .find(BmcAddress::is_usable)
    }
}

/// Where a blade's or rack unit's out-of-band CIMC interface lives.
pub fn mgmt_if_dn(pn_dn: &str) -> String {
    format!("{pn_dn}/mgmt/if-1")
}

/// The service profiles in a query answer, whatever the query (class, dn, hierarchical or not).
pub fn profiles(root: &Element) -> Vec<Profile> {
    out_configs(root)
        .filter_map(Profile::from_element)
        .collect()
}

/// Flat objects of a `configResolveDns`/`configResolveDn` answer, by dn.
pub fn objects_by_dn(root: &Element) -> HashMap<String, Element> {
    out_configs(root)
        .filter_map(|el| Some((el.attr_nonempty("dn")?.to_owned(), el.clone())))
        .collect()
}

/// Builds the record for one associated (or not) profile from the objects fetched for it.
pub fn record(
    profile: &Profile,
    hardware: &HashMap<String, Element>,
    system_name: &str,
) -> ServerRecord {
    let nics = nics(profile, hardware);
    let boot_mac = boot_mac(profile, &nics);
    let physical = profile
        .pn_dn
        .as_deref()
        .and_then(|pn| hardware.get(pn))
        .filter(|el| el.name == "computeBlade" || el.name == "computeRackUnit");
    let bmc = profile
        .own_ip()
        .or_else(|| mgmt_if_ip(profile, hardware))
        .map(|address| Bmc::reported(address, Some("cimc".into())));
    ServerRecord {
        name: profile.name.clone(),
        vendor: crate::domain::Vendor::Cisco,
        system: SystemKind::Ucsm,
        system_name: system_name.to_owned(),
        system_id: profile.dn.clone(),
        bmc,
        nics,
        boot_mac,
        serial_number: physical
            .and_then(|p| p.attr_nonempty("serial"))
            .map(str::to_owned),
        model: physical
            .and_then(|p| p.attr_nonempty("model"))
            .map(str::to_owned),
        power_state: physical
            .and_then(|p| p.attr_nonempty("operPower"))
            .map(str::to_ascii_lowercase),
        fetched_at: Utc::now(),
        stale: false,
        unverified: Vec::new(),
        nics_unavailable: None,
    }
}

/// vNICs in order, each with a usable MAC: pool MACs as given, `derived` ones from the
/// adapter's host-eth-if; a vNIC whose MAC cannot be known is left out, never guessed.
fn nics(profile: &Profile, hardware: &HashMap<String, Element>) -> Vec<Nic> {
    let mut vnics: Vec<&Vnic> = profile.vnics.iter().collect();
    vnics.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    vnics
        .into_iter()
        .filter_map(|v| {
            let mac = match v.addr {
                VnicAddr::Mac(mac) => mac,
                VnicAddr::Derived => derived_mac(v, hardware)?,
                VnicAddr::Missing => return None,
            };
            Some(Nic {
                name: v.name.clone(),
                mac,
                kind: v.kind.clone(),
                location: v.equipment_dn.clone(),
            })
        })
        .collect()
}

fn derived_mac(vnic: &Vnic, hardware: &HashMap<String, Element>) -> Option<MacAddress> {
    let eth_if = hardware.get(vnic.equipment_dn.as_deref()?)?;
    MacAddress::parse(eth_if.attr_nonempty("mac")?)
        .ok()
        .filter(|m| !m.is_zero())
}

/// The first vNIC (in order) that UCSM marks `bootDev="enabled"`, else the first vNIC.
fn boot_mac(profile: &Profile, nics: &[Nic]) -> Option<MacAddress> {
    nics.iter()
        .find(|n| profile.vnics.iter().any(|v| v.boot && v.name == n.name))
        .or_else(|| nics.first())
        .map(|n| n.mac)
}

fn mgmt_if_ip(profile: &Profile, hardware: &HashMap<String, Element>) -> Option<BmcAddress> {
    let mgmt = hardware.get(&mgmt_if_dn(profile.pn_dn.as_deref()?))?;
    if mgmt.attr("adminState").is_some_and(|s| s != "enable") {
        return None;
    }
    BmcAddress::parse(mgmt.attr_nonempty("extIp")?)
        .ok()
        .filter(BmcAddress::is_usable)
}

#[cfg(test)]
mod tests {
    use super::super::xml::parse;
    use super::*;

    fn fixture(name: &str) -> Element {
        let path = format!(
            "{}/tests/fixtures/vendor-payloads/ucsm/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        parse(&std::fs::read(path).unwrap()).unwrap()
    }

    fn mac(s: &str) -> MacAddress {
        MacAddress::parse(s).unwrap()
    }

    #[test]
    fn real_ls_server_capture() {
        let root = fixture("lsServer_real.xml");
        assert_eq!(api_error(&root), None);
        let profiles = profiles(&root);
        assert_eq!(profiles.len(), 1);
        let p = &profiles[0];
        assert_eq!(p.dn, "org-root/org-TPSP1/ls-TKS-POC-2");
        assert_eq!(p.name, "TKS-POC-2");
        assert!(p.is_instance());
        assert_eq!(p.pn_dn.as_deref(), Some("sys/chassis-1/blade-1"));
        assert_eq!(p.ext_ip_state.as_deref(), Some("pooled"));
        // 5 vnicEther; the two vnicIScsi with addr="derived" are not Ethernet vNICs.
        assert_eq!(p.vnics.len(), 5);
        assert!(p.vnics.iter().all(|v| matches!(v.addr, VnicAddr::Mac(_))));
        assert_eq!(
            p.ip_addrs,
            vec![("vnicIpV4PooledAddr".to_owned(), "10.107.34.54".to_owned())]
        );
        // Nothing derived, so only the server and its management interface are needed.
        assert_eq!(
            p.hardware_dns(),
            vec!["sys/chassis-1/blade-1", "sys/chassis-1/blade-1/mgmt/if-1"]
        );

        let r = record(p, &HashMap::new(), "ucs-a");
        let names: Vec<_> = r.nics.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            ["iscsi-a", "iscsi-b", "regiond-a", "maas-nfs-a", "Out-TKS"]
        );
        let macs: Vec<_> = r.nics.iter().map(|n| n.mac.to_string()).collect();
        assert_eq!(
            macs,
            [
                "00:25:b5:21:a5:3d",
                "00:25:b5:21:b5:3d",
                "00:25:b5:00:00:07",
                "00:25:b5:00:00:06",
                "00:25:b5:00:00:00"
            ]
        );
        assert_eq!(
            r.nics[0].location.as_deref(),
            Some("sys/chassis-1/blade-1/adaptor-1/host-eth-1")
        );
        assert_eq!(r.nics[0].kind.as_deref(), Some("ether"));
        // regiond-a is the one vNIC with bootDev="enabled" (boot policy tks-maas).
        assert_eq!(r.boot_mac, Some(mac("00:25:B5:00:00:07")));
        let bmc = r.bmc.unwrap();
        assert_eq!(bmc.address.to_string(), "10.107.34.54");
        assert_eq!(bmc.kind.as_deref(), Some("cimc"));
        assert_eq!(r.system_id, "org-root/org-TPSP1/ls-TKS-POC-2");
        assert_eq!(r.system_name, "ucs-a");
        // No hardware fetched: nothing invented.
        assert_eq!(
            (r.serial_number, r.model, r.power_state),
            (None, None, None)
        );
    }

    #[test]
    fn real_compute_blade_capture_completes_the_record() {
        let profile = profiles(&fixture("lsServer_real.xml")).remove(0);
        let hardware = objects_by_dn(&fixture("computeBlade_real.xml"));
        assert_eq!(hardware.len(), 1);
        let r = record(&profile, &hardware, "ucs-a");
        assert_eq!(r.serial_number.as_deref(), Some("FCH2423734G"));
        assert_eq!(r.model.as_deref(), Some("UCSB-B200-M5"));
        assert_eq!(r.power_state.as_deref(), Some("off"));
        assert_eq!(r.bmc.unwrap().address.to_string(), "10.107.34.54");
    }

    #[test]
    fn real_vnic_ether_class_capture() {
        let root = fixture("vnicEther_by_mac.xml");
        let vnics: Vec<_> = out_configs(&root).filter_map(Vnic::from_element).collect();
        assert_eq!(
            vnics,
            vec![Vnic {
                name: "regiond-a".into(),
                addr: VnicAddr::Mac(mac("00:25:b5:00:00:07")),
                order: Some(3),
                oper_order: Some(3),
                boot: true,
                equipment_dn: Some("sys/chassis-1/blade-1/adaptor-1/host-eth-3".into()),
                kind: Some("ether".into()),
            }]
        );
        // Not a profile answer: no profiles, no crash.
        assert!(profiles(&root).is_empty());
    }

    fn profile_xml(children: &str, attrs: &str) -> Profile {
        let doc = format!(
            r#"<configResolveClass cookie="c" response="yes" classId="lsServer"><outConfigs>
            <lsServer dn="org-root/org-A/ls-web-01" name="web-01" type="instance"
              pnDn="sys/rack-unit-3" {attrs}>{children}</lsServer></outConfigs></configResolveClass>"#
        );
        profiles(&parse(doc.as_bytes()).unwrap()).remove(0)
    }

    fn hw(xml: &str) -> HashMap<String, Element> {
        let doc = format!(
            r#"<configResolveDns response="yes"><outConfigs>{xml}</outConfigs></configResolveDns>"#
        );
        objects_by_dn(&parse(doc.as_bytes()).unwrap())
    }

    #[test]
    fn derived_macs_come_from_the_adapter_and_unknown_ones_are_dropped() {
        let p = profile_xml(
            r#"<vnicEther rn="ether-eth1" name="eth1" addr="derived" order="2"
                 equipmentDn="sys/rack-unit-3/adaptor-1/host-eth-2"/>
               <vnicEther rn="ether-eth0" name="eth0" addr="00:25:B5:00:00:01" order="1"/>
               <vnicEther rn="ether-eth2" name="eth2" addr="derived" order="3" equipmentDn=""/>
               <vnicEther rn="ether-eth3" name="eth3" addr="00:00:00:00:00:00" order="4"/>"#,
            "",
        );
        assert_eq!(
            p.hardware_dns(),
            vec![
                "sys/rack-unit-3",
                "sys/rack-unit-3/mgmt/if-1",
                "sys/rack-unit-3/adaptor-1/host-eth-2"
            ]
        );
        let hardware = hw(
            r#"<adaptorHostEthIf dn="sys/rack-unit-3/adaptor-1/host-eth-2" mac="00:25:B5:AA:BB:CC"/>"#,
        );
        let r = record(&p, &hardware, "u");
        let got: Vec<_> = r
            .nics
            .iter()
            .map(|n| (n.name.as_str(), n.mac.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("eth0", "00:25:b5:00:00:01".to_owned()),
                ("eth1", "00:25:b5:aa:bb:cc".to_owned())
            ]
        );
        // No bootDev anywhere: the first vNIC in order.
        assert_eq!(r.boot_mac, Some(mac("00:25:b5:00:00:01")));
    }

    #[test]
    fn order_falls_back_to_oper_order_then_name() {
        let p = profile_xml(
            r#"<vnicEther name="b" addr="00:25:B5:00:00:02" order="unspecified" operOrder="1"/>
               <vnicEther name="z" addr="00:25:B5:00:00:03" order="unspecified"/>
               <vnicEther name="a" addr="00:25:B5:00:00:01" order="unspecified"/>
               <vnicEther name="c" addr="00:25:B5:00:00:04" order="2" bootDev="enabled"/>"#,
            "",
        );
        let r = record(&p, &HashMap::new(), "u");
        let names: Vec<_> = r.nics.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "a", "z"]);
        assert_eq!(r.boot_mac, Some(mac("00:25:b5:00:00:04")));
    }

    #[test]
    fn cimc_ip_prefers_the_profile_then_the_mgmt_interface() {
        let mgmt = r#"<mgmtIf dn="sys/rack-unit-3/mgmt/if-1" extIp="10.20.0.9" adminState="enable" subject="blade"/>
            <computeRackUnit dn="sys/rack-unit-3" serial="WZP1" model="UCSC-C220-M5SX" operPower="ON"/>"#;
        let hardware = hw(mgmt);
        // Pooled address 0.0.0.0 = none assigned: fall back to the CIMC's own interface.
        let none = profile_xml(
            r#"<vnicIpV4PooledAddr rn="ipv4-pooled-addr" addr="0.0.0.0"/>"#,
            r#"extIPState="none""#,
        );
        let r = record(&none, &hardware, "u");
        assert_eq!(r.bmc.unwrap().address.to_string(), "10.20.0.9");
        assert_eq!(r.serial_number.as_deref(), Some("WZP1"));
        assert_eq!(r.model.as_deref(), Some("UCSC-C220-M5SX"));
        assert_eq!(r.power_state.as_deref(), Some("on"));

        let both = profile_xml(
            r#"<vnicIpV4PooledAddr rn="ipv4-pooled-addr" addr="10.1.1.1"/>
               <vnicIpV4StaticAddr rn="ipv4-static-addr" addr="10.2.2.2"/>"#,
            r#"extIPState="static""#,
        );
        let r = record(&both, &hardware, "u");
        assert_eq!(r.bmc.unwrap().address.to_string(), "10.2.2.2");

        let pooled = profile_xml(
            r#"<vnicIpV4StaticAddr rn="ipv4-static-addr" addr="169.254.0.1"/>
               <vnicIpV4PooledAddr rn="ipv4-pooled-addr" addr="10.1.1.1"/>"#,
            r#"extIPState="pooled""#,
        );
        assert_eq!(
            record(&pooled, &hardware, "u")
                .bmc
                .unwrap()
                .address
                .to_string(),
            "10.1.1.1"
        );

        let disabled = hw(
            r#"<mgmtIf dn="sys/rack-unit-3/mgmt/if-1" extIp="10.20.0.9" adminState="disable"/>"#,
        );
        assert_eq!(record(&none, &disabled, "u").bmc, None);
        assert_eq!(record(&none, &HashMap::new(), "u").bmc, None);
    }

    #[test]
    fn unassociated_profiles_need_no_hardware_and_templates_are_not_instances() {
        let doc = r#"<configResolveClass response="yes"><outConfigs>
            <lsServer dn="org-root/ls-t" name="t" type="updating-template" pnDn=""/>
            <lsServer dn="org-root/ls-u" name="u" type="instance" pnDn=""/>
            <lsServer name="no-dn"/><vnicEther dn="x" name="e"/>
            </outConfigs></configResolveClass>"#;
        let ps = profiles(&parse(doc.as_bytes()).unwrap());
        assert_eq!(ps.len(), 2);
        assert!(!ps[0].is_instance());
        assert!(ps[1].is_instance());
        assert_eq!(ps[1].pn_dn, None);
        assert!(ps[1].hardware_dns().is_empty());
    }

    #[test]
    fn api_errors_are_found_in_either_shape() {
        let e = api_error(
            &parse(br#"<configResolveClass cookie="" response="yes" errorCode="552" invocationResult="service-unavailable" errorDescr="Authorization required"> </configResolveClass>"#)
                .unwrap(),
        )
        .unwrap();
        assert!(e.is_session_invalid());
        assert_eq!(e.descr, "Authorization required");
        let e = api_error(
            &parse(br#"<error cookie="" response="yes" errorCode="ERR-xml-parse-error" invocationResult="594" errorDescr="XML PARSING ERROR: no"/>"#)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(e.code, "ERR-xml-parse-error");
        assert!(!e.is_session_invalid());
        let zero = parse(br#"<aaaLogin errorCode="0" errorDescr=""/>"#).unwrap();
        assert!(
            api_error(&zero).is_some(),
            "errorCode=\"0\" is still an error"
        );
    }

    #[test]
    fn login_cookie_is_required() {
        let ok = parse(br#"<aaaLogin cookie="" response="yes" outCookie="1604697553/058fb963-cf5b-40fc-a1c0-5d713ec2cbad" outRefreshPeriod="600"> </aaaLogin>"#).unwrap();
        assert_eq!(
            login_cookie(&ok).unwrap(),
            "1604697553/058fb963-cf5b-40fc-a1c0-5d713ec2cbad"
        );
        let empty = parse(br#"<aaaLogin response="yes" outCookie=""/>"#).unwrap();
        assert!(login_cookie(&empty).is_err());
        let wrong = parse(br#"<aaaLogout outCookie="x"/>"#).unwrap();
        assert!(login_cookie(&wrong).is_err());
    }
}
