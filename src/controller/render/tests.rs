//! Golden files and the rules each rendered object must follow.

use std::path::PathBuf;

use chrono::TimeZone;
use secrecy::SecretString;

use super::nic::glob_match;
use super::*;
use crate::controller::crd::{BareMetalHostGenerator, MacIndex};
use crate::domain::{Bmc, BmcAddress, Nic, SystemKind};

fn creds() -> CredentialStore {
    let mut c = CredentialStore::default();
    for (v, user) in [
        (Vendor::Hpe, "ilo-admin"),
        (Vendor::Dell, "root"),
        (Vendor::Cisco, "ipmi-user"),
    ] {
        c.insert(
            v,
            BmcCredentials {
                username: user.into(),
                password: SecretString::from(format!("{user}-secret-pw")),
            },
        );
    }
    c
}

fn record(vendor: Vendor, name: &str, bmc: &str, macs: &[&str]) -> ServerRecord {
    let system = match vendor {
        Vendor::Hpe => SystemKind::Oneview,
        Vendor::Cisco => SystemKind::Ucsm,
        Vendor::Dell => SystemKind::Ome,
        Vendor::Supermicro | Vendor::Lenovo | Vendor::Other => SystemKind::Redfish,
    };
    ServerRecord {
        name: name.into(),
        vendor,
        system,
        system_name: format!("{system}-1"),
        system_id: "id-1".into(),
        bmc: Some(Bmc::reported(BmcAddress::parse(bmc).unwrap(), None)),
        nics: macs
            .iter()
            .enumerate()
            .map(|(i, m)| Nic {
                name: format!("nic-{i}"),
                mac: MacAddress::parse(m).unwrap(),
                kind: None,
                location: None,
            })
            .collect(),
        boot_mac: macs.first().map(|m| MacAddress::parse(m).unwrap()),
        serial_number: None,
        model: None,
        power_state: None,
        fetched_at: chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        stale: false,
        unverified: Vec::new(),
        nics_unavailable: None,
    }
}

fn request(yaml: &str) -> GeneratorRequest {
    serde_norway::from_str::<BareMetalHostGenerator>(yaml)
        .unwrap()
        .parse()
        .unwrap()
}

/// One object as YAML with its keys sorted (through a JSON value), so the golden files
/// compare content, not the field order of the Rust types.
fn yaml<T: serde::Serialize>(object: &T) -> String {
    serde_norway::to_string(&serde_json::to_value(object).unwrap()).unwrap()
}

/// All rendered objects as one multi-document YAML, the golden files' format.
fn to_yaml(r: &Rendered) -> String {
    let mut docs = vec![yaml(r.secret.as_secret()), yaml(&r.bare_metal_host)];
    if let Some(nm) = &r.nmstate_config {
        docs.push(yaml(nm));
    }
    docs.join("---\n")
}

/// Compare with `tests/fixtures/controller/<name>.yaml`; `UPDATE_GOLDEN=1` rewrites it.
fn golden(name: &str, r: &Rendered) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/controller")
        .join(format!("{name}.yaml"));
    let got = to_yaml(r);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert!(
        got == want,
        "{name}: rendered output differs from {}\n--- got ---\n{got}",
        path.display()
    );
}

const MACS: [&str; 3] = [
    "AA:BB:CC:00:00:01",
    "aa:bb:cc:00:00:02",
    "aa:bb:cc:00:00:03",
];

#[test]
fn hpe_old_operator_example_with_vlan_and_override() {
    let req = request(
        "metadata: {name: worker-01, namespace: ztp}
spec:
  serverName: ov-srv-0001
  namespace: cluster-a
  infraEnv: cluster-a-env
  labels: {rack: r12}
  server_vendor: HP
  networkConfig: {vlanId: 120, nicName: ens1f0, macIndex: last}
",
    );
    let rec = record(Vendor::Hpe, "OV-SRV-0001", "10.10.0.5", &MACS);
    let r = render(
        &req,
        &rec,
        &creds(),
        &ProfileRules::default(),
        &RenderOptions::default(),
    )
    .unwrap();
    assert_eq!(r.selection.source, NicSource::Override);
    assert_eq!(r.selection.mac_index, 2);
    // Named after the server, as the old operator named them, not after the generator.
    assert_eq!(r.secret.name(), "hp-cred-ov-srv-0001");
    assert_eq!(r.bmh_name, "ov-srv-0001");
    golden("hpe-vlan-override", &r);
    // A server name that is no valid object name fails; it is never rewritten to fit.
    let mut upper = req.clone();
    upper.object_name = "OV-SRV-0001".into();
    let e = render(
        &upper,
        &rec,
        &creds(),
        &ProfileRules::default(),
        &RenderOptions::default(),
    );
    assert!(
        matches!(e, Err(RenderError::ObjectName { ref name, .. }) if name == "OV-SRV-0001"),
        "{e:?}"
    );
}

#[test]
fn dell_default_nic_is_the_vendor_boot_nic() {
    let req = request("metadata: {name: db-3, namespace: ztp}\nspec: {infraEnv: env}\n");
    let mut rec = record(Vendor::Dell, "db-3", "idrac-db3.lab.example", &MACS);
    rec.boot_mac = Some(MacAddress::parse(MACS[1]).unwrap());
    let r = render(
        &req,
        &rec,
        &creds(),
        &ProfileRules::default(),
        &RenderOptions::default(),
    )
    .unwrap();
    assert_eq!(
        (r.selection.source, r.selection.mac_index),
        (NicSource::VendorDefault, 1)
    );
    assert!(r.nmstate_config.is_none());
    golden("dell-default", &r);
}

#[test]
fn cisco_ipv6_profile_rule_plain_metal3() {
    let rules = ProfileRules::from_yaml(
            "rules:\n- {pattern: 'UCS-*-db?', nicName: enp94s0f1, macIndex: '1'}\n- {pattern: '*', nicName: eno1, macIndex: first}\n",
        )
        .unwrap();
    let req = request(
            "metadata: {name: ucs-a-db1, namespace: ztp}\nspec: {serverName: ucs-a-db1, infraEnv: env, server_vendor: cisco, networkConfig: {vlanId: 42}}\n",
        );
    let rec = record(Vendor::Cisco, "ucs-a-db1", "fd00:10::20", &MACS);
    let opts = RenderOptions {
        assisted_installer: false,
        disable_certificate_verification: false,
        boot_mode: BootMode::Legacy,
        ..RenderOptions::default()
    };
    let r = render(&req, &rec, &creds(), &rules, &opts).unwrap();
    assert_eq!(r.selection.source, NicSource::ProfileRule);
    assert_eq!(r.selection.rule.as_deref(), Some("UCS-*-db?"));
    assert_eq!(r.bmc_address, "ipmi://[fd00:10::20]:623");
    golden("cisco-ipv6-rule-plain", &r);
    // Found through UCS Central instead: the same Cisco host, the same objects.
    let central = ServerRecord {
        system: SystemKind::UcsCentral,
        system_name: "ucs-central-1".into(),
        system_id: "10.20.0.10/org-root/ls-ucs-a-db1".into(),
        ..rec
    };
    let via_central = render(&req, &central, &creds(), &rules, &opts).unwrap();
    assert_eq!(to_yaml(&via_central), to_yaml(&r));
}

#[test]
fn bmc_addresses_per_vendor() {
    let v4 = BmcAddress::parse("10.0.0.9").unwrap();
    let v6 = BmcAddress::parse("2001:db8::10").unwrap();
    assert_eq!(
        bmc_address(Vendor::Hpe, &v4, None, None),
        "redfish-virtualmedia://10.0.0.9/redfish/v1/Systems/1"
    );
    assert_eq!(
        bmc_address(Vendor::Hpe, &v6, None, None),
        "redfish-virtualmedia://[2001:db8::10]/redfish/v1/Systems/1"
    );
    assert_eq!(
        bmc_address(Vendor::Dell, &v6, None, None),
        "idrac-virtualmedia://[2001:db8::10]/redfish/v1/Systems/System.Embedded.1"
    );
    assert_eq!(
        bmc_address(Vendor::Cisco, &v4, None, None),
        "ipmi://10.0.0.9:623"
    );
}

#[test]
fn a_system_path_the_bmc_listed_replaces_the_assumed_one() {
    let v4 = BmcAddress::parse("10.0.0.9").unwrap();
    assert_eq!(
        bmc_address(
            Vendor::Dell,
            &v4,
            Some("/redfish/v1/Systems/System.Embedded.2"),
            None
        ),
        "idrac-virtualmedia://10.0.0.9/redfish/v1/Systems/System.Embedded.2"
    );
    assert_eq!(
        bmc_address(Vendor::Supermicro, &v4, Some("/redfish/v1/Systems/1"), None),
        "redfish-virtualmedia://10.0.0.9/redfish/v1/Systems/1"
    );
    assert_eq!(
        bmc_address(Vendor::Other, &v4, None, None),
        "redfish-virtualmedia://10.0.0.9/redfish/v1/Systems/1"
    );
    assert_eq!(
        bmc_address(
            Vendor::Other,
            &v4,
            Some("/redfish/v1/Systems/system"),
            Some(8443)
        ),
        "redfish-virtualmedia://10.0.0.9:8443/redfish/v1/Systems/system"
    );
    assert_eq!(
        bmc_address(Vendor::Dell, &v4, None, Some(443)),
        "idrac-virtualmedia://10.0.0.9/redfish/v1/Systems/System.Embedded.1"
    );
    // Cisco keeps the scheme its existing hosts carry.
    assert_eq!(
        bmc_address(
            Vendor::Cisco,
            &v4,
            Some("/redfish/v1/Systems/WZP2311"),
            None
        ),
        "ipmi://10.0.0.9:623"
    );
    // Nothing but one ComputerSystem path is taken from a BMC.
    for bent in [
        "/redfish/v1/Systems/",
        "/redfish/v1/Systems/../../evil",
        "/redfish/v1/Systems/1?x=@other",
        "//other.example/redfish/v1/Systems/1",
        "/redfish/v1/Managers/1",
    ] {
        assert_eq!(
            bmc_address(Vendor::Hpe, &v4, Some(bent), None),
            "redfish-virtualmedia://10.0.0.9/redfish/v1/Systems/1",
            "{bent}"
        );
    }
}

#[test]
fn what_the_metal3_webhook_would_reject_fails_here() {
    let ok = request("metadata: {name: h1, namespace: ztp}\nspec: {infraEnv: env}\n");
    let rec = record(Vendor::Hpe, "h1", "10.0.0.1", &MACS);
    let none = ProfileRules::default();
    let opts = RenderOptions::default();
    let run = |req: &GeneratorRequest, rec: &ServerRecord, opts: &RenderOptions| {
        render(req, rec, &creds(), &none, opts).map(|_| ())
    };
    assert_eq!(run(&ok, &rec, &opts), Ok(()));

    let uuid = request(
            "metadata: {name: h1, namespace: ztp}\nspec: {infraEnv: env, serverName: 123e4567-e89b-12d3-a456-426614174000}\n",
        );
    assert!(matches!(
        run(&uuid, &rec, &opts),
        Err(RenderError::ObjectName { .. })
    ));

    let mut zero = rec.clone();
    zero.nics[0].mac = MacAddress::parse("00:00:00:00:00:00").unwrap();
    assert!(matches!(
        run(&ok, &zero, &opts),
        Err(RenderError::BadMac(_))
    ));

    let mut no_bmc = rec.clone();
    no_bmc.bmc = None;
    assert!(matches!(
        run(&ok, &no_bmc, &opts),
        Err(RenderError::NoBmc(_))
    ));
    let mut link_local = rec.clone();
    link_local.bmc = Some(Bmc::reported(BmcAddress::parse("fe80::1").unwrap(), None));
    assert!(matches!(
        run(&ok, &link_local, &opts),
        Err(RenderError::NoBmc(_))
    ));

    let cisco = record(Vendor::Cisco, "h1", "10.0.0.1", &MACS);
    let secure = RenderOptions {
        boot_mode: BootMode::UefiSecureBoot,
        ..RenderOptions::default()
    };
    assert_eq!(
        run(&ok, &cisco, &secure),
        Err(RenderError::SecureBootOnIpmi(Vendor::Cisco))
    );

    let out_of_range = request(
            "metadata: {name: h1, namespace: ztp}\nspec: {infraEnv: env, networkConfig: {nicName: eth0, macIndex: 7}}\n",
        );
    assert!(matches!(
        run(&out_of_range, &rec, &opts),
        Err(RenderError::MacIndexOutOfRange { nics: 3, .. })
    ));

    let long_vlan_iface = request(
            "metadata: {name: h1, namespace: ztp}\nspec: {infraEnv: env, networkConfig: {vlanId: 4094, nicName: enp175s0f1np1, macIndex: 0}}\n",
        );
    assert!(matches!(
        run(&long_vlan_iface, &rec, &opts),
        Err(RenderError::InterfaceName { .. })
    ));

    let bad_label = request(
        "metadata: {name: h1, namespace: ztp}\nspec: {infraEnv: env, labels: {rack: 'r 12'}}\n",
    );
    assert!(matches!(
        run(&bad_label, &rec, &opts),
        Err(RenderError::Label { .. })
    ));

    let mut no_nics = rec.clone();
    no_nics.nics.clear();
    assert!(matches!(
        run(&ok, &no_nics, &opts),
        Err(RenderError::NoNics(_, None))
    ));
    // The system's reason reaches the generator's Failed message.
    no_nics.nics_unavailable = Some("no adapter inventory".into());
    let err = run(&ok, &no_nics, &opts).unwrap_err();
    assert!(err.to_string().ends_with(": no adapter inventory"), "{err}");
}

#[test]
fn credentials_are_required_and_never_debug_printed() {
    let req = request("metadata: {name: h1, namespace: ztp}\nspec: {infraEnv: env}\n");
    let rec = record(Vendor::Dell, "h1", "10.0.0.1", &MACS);
    let none = ProfileRules::default();
    let opts = RenderOptions::default();
    assert_eq!(
        render(&req, &rec, &CredentialStore::default(), &none, &opts).map(|_| ()),
        Err(RenderError::NoCredentials(Vendor::Dell))
    );
    let mut blank = CredentialStore::default();
    blank.insert(
        Vendor::Dell,
        BmcCredentials {
            username: "root".into(),
            password: SecretString::from("  "),
        },
    );
    assert_eq!(
        render(&req, &rec, &blank, &none, &opts).map(|_| ()),
        Err(RenderError::EmptyCredentials(Vendor::Dell))
    );
    let r = render(&req, &rec, &creds(), &none, &opts).unwrap();
    let debug = format!("{r:?} {:?}", creds());
    assert!(!debug.contains("root-secret-pw"), "{debug}");
    assert!(debug.contains("dell-cred-h1"));
}

#[test]
fn profile_rules() {
    assert!(glob_match("web-*", "WEB-01"));
    assert!(glob_match("*-db?", "ucs-a-db1"));
    assert!(!glob_match("*-db?", "ucs-a-db12"));
    assert!(glob_match("a*b*c", "aXXbYYc"));
    assert!(!glob_match("a*b*c", "aXXbYY"));
    assert!(glob_match("*", ""));
    let rules =
        ProfileRules::from_yaml("rules:\n- {pattern: 'web-*', nicName: ens3, macIndex: last}\n")
            .unwrap();
    let (rule, idx) = rules.find("Web-7").unwrap();
    assert_eq!((rule.nic_name.as_str(), idx), ("ens3", MacIndex::Last));
    assert!(rules.find("db-1").is_none());
    assert!(
        ProfileRules::from_yaml("rules:\n- {pattern: x, nicName: e, macIndex: middle}\n").is_err()
    );
    assert!(
        ProfileRules::from_yaml("rules:\n- {pattern: x, nicName: 'a b', macIndex: 0}\n").is_err()
    );
    // A file in neither format never loads as "no rules".
    for neither in [
        "{}",
        "",
        "profile:\n- {pattern: x, nic_name: e}\n",
        "rules: []\nprofiles: []\n",
        "- a\n",
    ] {
        let e = ProfileRules::from_yaml(neither).unwrap_err().to_string();
        assert!(
            e.contains("neither") || e.contains("rules"),
            "{neither:?}: {e}"
        );
    }
    assert_eq!(
        ProfileRules::from_yaml("rules: []\n").unwrap(),
        ProfileRules::default()
    );
}

#[test]
fn the_old_operators_profiles_file_is_read_with_its_meaning() {
    let old = "profiles:\n  - pattern: \"h100\"\n    nic_name: \"ens8f0np0\"\n    mac_index: \"2\"\n  - pattern: \"10tb-\"\n    nic_name: \"ens2f0np0\"\n    mac_index: \"last\"\n  - default: true\n    nic_name: \"eno12399np0\"\n    mac_index: \"first\"\n";
    let rules = ProfileRules::from_yaml(old).unwrap();
    assert_eq!(rules.format(), "old operator's profiles");
    let none = ProfileRules::default();
    let _ = none;
    let req = request("metadata: {name: gpu-h100-7, namespace: ztp}\nspec: {infraEnv: env}\n");
    // Dell: index 2 is the third *card*; here cards 1 and 3 have two partitions each.
    let mut dell = record(Vendor::Dell, "GPU-H100-7", "10.0.0.8", &MACS);
    let names = [
        "NIC.Integrated.1-1-1",
        "NIC.Integrated.1-2-1",
        "NIC.Slot.2-1-1",
    ];
    for (n, name) in dell.nics.iter_mut().zip(names) {
        n.name = name.into();
    }
    dell.nics.push(Nic {
        name: "NIC.Slot.3-1-1".into(),
        mac: MacAddress::parse("aa:bb:cc:00:00:04").unwrap(),
        kind: None,
        location: None,
    });
    let s = select_nic(&req, &dell, &rules, &RenderOptions::default()).unwrap();
    assert_eq!((s.nic_name.as_str(), s.mac_index), ("ens8f0np0", 3));
    // The new format's index 2 is the third NIC: the two formats differ here.
    let new =
        ProfileRules::from_yaml("rules:\n- {pattern: '*h100*', nicName: ens8f0np0, macIndex: 2}\n")
            .unwrap();
    assert_eq!(
        select_nic(&req, &dell, &new, &RenderOptions::default())
            .unwrap()
            .mac_index,
        2
    );
    // HP/Cisco: the old operator ignored mac_index and took the vendor's boot NIC.
    let mut hp = record(Vendor::Hpe, "gpu-h100-7", "10.0.0.9", &MACS);
    hp.boot_mac = Some(MacAddress::parse(MACS[1]).unwrap());
    let s = select_nic(&req, &hp, &rules, &RenderOptions::default()).unwrap();
    assert_eq!((s.nic_name.as_str(), s.mac_index), ("ens8f0np0", 1));
    // The default entry
    let web = request("metadata: {name: web-1, namespace: ztp}\nspec: {infraEnv: env}\n");
    let s = select_nic(
        &web,
        &record(Vendor::Dell, "web-1", "10.0.0.7", &MACS),
        &rules,
        &RenderOptions::default(),
    )
    .unwrap();
    assert_eq!(
        (s.nic_name.as_str(), s.mac_index, s.rule.as_deref()),
        ("eno12399np0", 0, Some("default"))
    );
    // last
    let st = request("metadata: {name: st-10tb-1, namespace: ztp}\nspec: {infraEnv: env}\n");
    let s = select_nic(
        &st,
        &record(Vendor::Dell, "st-10tb-1", "10.0.0.6", &MACS),
        &rules,
        &RenderOptions::default(),
    )
    .unwrap();
    assert_eq!((s.nic_name.as_str(), s.mac_index), ("ens2f0np0", 2));
}

#[test]
fn the_vlan_annotation_makes_an_nmstateconfig_for_dell_only() {
    let req = request("metadata: {name: d1, namespace: ztp, annotations: {vlanId: '24', server_vendor: DELL}}\nspec: {infraEnv: env}\n");
    assert_eq!(
        (req.vendor, req.annotation_vlan_id),
        (Some(Vendor::Dell), Some(24))
    );
    let none = ProfileRules::default();
    let r = render(
        &req,
        &record(Vendor::Dell, "d1", "10.0.0.2", &MACS),
        &creds(),
        &none,
        &RenderOptions::default(),
    )
    .unwrap();
    let nm = r.nmstate_config.unwrap();
    assert_eq!(nm.metadata.name.as_deref(), Some("nmstate-config-d1"));
    let interfaces = &nm.spec.config.as_ref().unwrap().interfaces;
    assert_eq!(interfaces[1].vlan.as_ref().unwrap().id, 24);
    let r = render(
        &req,
        &record(Vendor::Hpe, "d1", "10.0.0.2", &MACS),
        &creds(),
        &none,
        &RenderOptions::default(),
    )
    .unwrap();
    assert!(r.nmstate_config.is_none());
}
