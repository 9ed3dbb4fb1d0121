use serde_json::{json, Value};

use super::*;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/vendor-payloads/ome/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ip(s: &str) -> BmcAddress {
    BmcAddress::Ip(s.parse().unwrap())
}

fn mac(s: &str) -> MacAddress {
    MacAddress::parse(s).unwrap()
}

/// The NIC entry of the captured all-types inventory (device 12795).
fn captured_nic_info() -> Value {
    let all = fixture("responseGetAllDeviceInventory.json");
    let entry = all["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["InventoryType"] == "serverNetworkInterfaces")
        .unwrap()
        .clone();
    entry["InventoryInfo"].clone()
}

#[test]
fn captured_devices_collection() {
    let c = collection(fixture("responseGetAllDevices.json")).unwrap();
    assert_eq!(c.count, Some(5));
    assert_eq!(c.items.len(), 5);
    let devices: Vec<Device> = c.items.iter().map(|d| device(d).unwrap()).collect();

    let a = &devices[0];
    assert_eq!(a.id, 123450);
    assert_eq!(a.name.as_deref(), Some("server_a"));
    assert_eq!(a.service_tag.as_deref(), Some("MX84002"));
    assert_eq!(a.model.as_deref(), Some("PowerEdge MX840c"));
    assert_eq!(a.power_state.as_deref(), Some("off"));
    assert!(a.is_server());
    assert!(a.has_tag("mx84002"));
    let bmc = a.bmc.as_ref().unwrap();
    assert_eq!(bmc.address, ip("192.35.0.1"));
    // Versions 7.00 and 6.10: iDRAC9 firmware.
    assert_eq!(bmc.kind.as_deref(), Some("idrac9"));

    assert_eq!(devices[1].power_state.as_deref(), Some("on"));
    assert_eq!(devices[1].name.as_deref(), Some("1.2.3.4"));
    assert_eq!(devices[1].bmc.as_ref().unwrap().address, ip("1.2.3.4"));

    // Only link-local management addresses (one with an unbracketed IPv6 URL): no BMC rather
    // than an address a cluster cannot reach.
    assert_eq!(devices[2].id, 123458);
    assert_eq!(devices[2].bmc, None);
    assert_eq!(devices[4].id, 123460);
    assert_eq!(devices[4].bmc, None);
    assert_eq!(devices[4].model.as_deref(), Some("PowerEdge R730xd"));
}

#[test]
fn idrac_generation_from_firmware() {
    let dm = |versions: &[&str]| -> Vec<Value> {
        let profiles: Vec<Value> = versions
            .iter()
            .map(|v| json!({"AgentName": "iDRAC", "Version": v}))
            .collect();
        vec![json!({"NetworkAddress": "10.0.0.5", "ManagementProfile": profiles})]
    };
    assert_eq!(idrac_kind(&dm(&["7.00.00.00", "6.10.80.00"])), "idrac9");
    assert_eq!(idrac_kind(&dm(&["3.00.00.00"])), "idrac9");
    // The captured R730xd (iDRAC8) reports 2.84; 2.x is shared with iDRAC7.
    assert_eq!(idrac_kind(&dm(&["2.84.84.84"])), "idrac");
    assert_eq!(idrac_kind(&dm(&["1.10.05.00"])), "idrac");
    assert_eq!(idrac_kind(&dm(&[])), "idrac");
    assert_eq!(idrac_kind(&dm(&["garbage"])), "idrac");
    let other_agent = vec![json!({"ManagementProfile": [{"AgentName": "CMC", "Version": "4.0"}]})];
    assert_eq!(idrac_kind(&other_agent), "idrac");
}

#[test]
fn management_entries_skip_placeholders() {
    let entries = vec![
        json!({"NetworkAddress": "[::]", "ManagementType": 2}),
        json!({"NetworkAddress": "", "ManagementType": 2}),
        json!({"NetworkAddress": "fe80::1", "ManagementType": 2}),
        json!({"NetworkAddress": "0.0.0.0", "ManagementType": 2}),
        json!({"NetworkAddress": "[fd00:30::7]", "ManagementType": 2}),
        json!({"NetworkAddress": "10.0.0.9", "ManagementType": 2}),
    ];
    let found = bmc(&entries).unwrap();
    assert_eq!(found.address, ip("fd00:30::7"));
    assert_eq!(found.kind.as_deref(), Some("idrac"));
    assert_eq!(bmc(&[json!({"NetworkAddress": "[::]"})]), None);
    assert_eq!(bmc(&[]), None);
}

#[test]
fn management_url_is_the_fallback() {
    let entries = vec![json!({
        "NetworkAddress": "[::]",
        "ManagementProfile": [
            {"AgentName": "iDRAC", "Version": "6.10.80.00", "ManagementURL": "https://[::]:443"},
            {"AgentName": "iDRAC", "ManagementURL": "https://fd00::1:2:443"}
        ]
    })];
    assert_eq!(bmc(&entries).unwrap().address, ip("fd00::1:2"));
}

#[test]
fn url_hosts() {
    for (url, host) in [
        ("https://192.35.0.1:443", Some("192.35.0.1")),
        (
            "https://fe80::ffff:ffff:ffff:1111:443",
            Some("fe80::ffff:ffff:ffff:1111"),
        ),
        (
            "https://fe80::ffff:192.0.2.11:443",
            Some("fe80::ffff:192.0.2.11"),
        ),
        ("https://[fd00::5]:443/redfish", Some("fd00::5")),
        ("https://idrac-abc.example/", Some("idrac-abc.example")),
        ("https://user@10.1.1.1:8443", Some("10.1.1.1")),
        ("10.1.1.1", Some("10.1.1.1")),
        ("https://", None),
    ] {
        assert_eq!(url_host(url), host, "{url}");
    }
}

#[test]
fn captured_nic_inventory_in_the_all_types_collection() {
    let all = fixture("responseGetAllDeviceInventory.json");
    let nics = network_interfaces(&all).unwrap();
    let names: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "NIC.Integrated.1-1-1",
            "NIC.Integrated.1-2-1",
            "NIC.Integrated.1-3-1",
            "NIC.Integrated.1-4-1"
        ]
    );
    // Upper-case CurrentMacAddress normalised; the 00:… VirtualMacAddress is not a NIC.
    assert_eq!(nics[0].mac, mac("e4:43:4b:17:e0:a8"));
    assert_eq!(nics[3].mac.to_string(), "e4:43:4b:17:e0:ad");
    assert_eq!(nics[1].location.as_deref(), Some("NIC.Integrated.1-2"));
    assert_eq!(nics[1].kind.as_deref(), Some("integrated"));
    assert_eq!(boot_mac(&nics), Some(mac("E4:43:4B:17:E0:A8")));
}

#[test]
fn single_type_envelope() {
    // The captured envelope is for another inventory type: refused, not read as "no NICs".
    let cards = fixture("responseGetSingleDeviceInventory.json");
    let err = network_interfaces(&cards).unwrap_err();
    assert!(err.contains("serverDeviceCards"), "{err}");

    // The same envelope as OME sends it for serverNetworkInterfaces.
    let mut nic = cards.clone();
    nic["InventoryType"] = json!("serverNetworkInterfaces");
    nic["@odata.id"] =
        json!("/api/DeviceService/Devices(13528)/InventoryDetails('serverNetworkInterfaces')");
    nic["InventoryInfo"] = captured_nic_info();
    assert_eq!(network_interfaces(&nic).unwrap().len(), 4);

    nic["InventoryInfo"] = json!([]);
    assert!(network_interfaces(&nic).unwrap().is_empty());
}

#[test]
fn bare_list_shape() {
    let list = captured_nic_info();
    assert_eq!(network_interfaces(&list).unwrap().len(), 4);
    let typed = json!([{"InventoryType": "serverNetworkInterfaces", "InventoryInfo": list}]);
    assert_eq!(network_interfaces(&typed).unwrap().len(), 4);
    assert!(network_interfaces(&json!("nope")).is_err());
    assert!(network_interfaces(&json!({"foo": 1})).is_err());
}

#[test]
fn partitions_without_a_real_mac_are_skipped_and_order_is_natural() {
    let body = json!({"InventoryType": "serverNetworkInterfaces", "InventoryInfo": [
        {"NicId": "NIC.Slot.10", "Ports": [{"PortId": "NIC.Slot.10-1", "Partitions": [
            {"Fqdd": "NIC.Slot.10-1-1", "CurrentMacAddress": "AA:00:00:00:00:10"}]}]},
        {"NicId": "NIC.Slot.2", "Ports": [{"PortId": "NIC.Slot.2-1", "Partitions": [
            {"Fqdd": "NIC.Slot.2-1-2", "CurrentMacAddress": "00:00:00:00:00:00",
             "PermanentMacAddress": "AA:00:00:00:00:22"},
            {"Fqdd": "NIC.Slot.2-1-3", "CurrentMacAddress": ""},
            {"Fqdd": "NIC.Slot.2-1-4", "CurrentMacAddress": "not-a-mac"},
            {"Fqdd": "NIC.Slot.2-1-5"},
            {"Fqdd": "NIC.Slot.2-1-1", "CurrentMacAddress": "aa-00-00-00-00-21",
             "UnknownField": {"x": 1}}]}]},
        {"NicId": "NIC.Embedded.1", "Ports": [{"PortId": "NIC.Embedded.1-1", "Partitions": [
            {"Fqdd": "NIC.Embedded.1-1-1", "CurrentMacAddress": "AA:00:00:00:00:01"}]}]},
        {"NicId": "NIC.Mezzanine.1A", "Ports": [{"PortId": "NIC.Mezzanine.1A-1",
            "Partitions": null}]},
        {"NicId": "InfiniBand.Slot.7"}
    ]});
    let nics = network_interfaces(&body).unwrap();
    let names: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        ["NIC.Embedded.1-1-1", "NIC.Slot.2-1-1", "NIC.Slot.10-1-1"]
    );
    // No integrated NIC: the embedded LOM is the boot NIC.
    assert_eq!(boot_mac(&nics), Some(mac("aa:00:00:00:00:01")));
    assert_eq!(boot_mac(&nics[1..]), Some(mac("aa:00:00:00:00:21")));
    assert_eq!(boot_mac(&[]), None);
}

#[test]
fn integrated_beats_embedded_for_boot() {
    let body = json!({"InventoryInfo": [
        {"NicId": "NIC.Embedded.1", "Ports": [{"PortId": "NIC.Embedded.1-1", "Partitions": [
            {"Fqdd": "NIC.Embedded.1-1-1", "CurrentMacAddress": "AA:00:00:00:00:01"}]}]},
        {"NicId": "NIC.Integrated.1", "Ports": [{"PortId": "NIC.Integrated.1-1", "Partitions": [
            {"Fqdd": "NIC.Integrated.1-1-1", "CurrentMacAddress": "AA:00:00:00:00:02"}]}]}
    ]});
    let nics = network_interfaces(&body).unwrap();
    assert_eq!(nics[0].name, "NIC.Embedded.1-1-1");
    assert_eq!(boot_mac(&nics), Some(mac("aa:00:00:00:00:02")));
}

#[test]
fn session_configuration_is_a_plain_collection() {
    // The only SessionService payload captured; the backend reads no field of it, but it must
    // decode as an ordinary collection (count on the envelope, not the page length).
    let c = collection(fixture("responseGetNetworkSession.json")).unwrap();
    assert_eq!(c.count, Some(3));
    let api = c.items.iter().find(|i| i["SessionType"] == "API").unwrap();
    assert_eq!(api["SessionTimeout"], 1_800_000);
}

#[test]
fn collections_need_a_value_array() {
    assert!(collection(json!({"@odata.count": 0})).is_err());
    assert!(collection(json!({"value": {}})).is_err());
    assert!(collection(json!([])).is_err());
    let c = collection(json!({"value": [], "@odata.count": "7"})).unwrap();
    assert_eq!(c.count, Some(7));
    assert!(collection(json!({"value": []})).unwrap().count.is_none());
}

#[test]
fn profiles_and_their_targets() {
    let deployed = json!({"Id": 10, "ProfileName": "web01", "TargetId": 25001,
        "TargetName": "ABC1234", "ProfileState": 4, "NewField": true});
    let p = profile(&deployed).unwrap();
    assert_eq!(p.id, Some(10));
    assert_eq!(p.target(), ProfileTarget::Device(25001));

    let to_tag = json!({"Id": 11, "ProfileName": "web02", "TargetId": 0,
        "TargetName": "XYZ9876", "ProfileState": 1});
    assert_eq!(
        profile(&to_tag).unwrap().target(),
        ProfileTarget::ServiceTag("XYZ9876".into())
    );

    let unassigned = json!({"Id": 12, "ProfileName": "web03", "TargetId": 0,
        "TargetName": null, "ProfileState": 0});
    assert_eq!(
        profile(&unassigned).unwrap().target(),
        ProfileTarget::Unassigned
    );
    let odd_state = json!({"ProfileName": "web04", "TargetId": 0, "TargetName": "T",
        "ProfileState": 3});
    assert_eq!(
        profile(&odd_state).unwrap().target(),
        ProfileTarget::Unassigned
    );

    assert!(profile(&json!({"Id": 13})).is_none());
}

#[test]
fn power_codes() {
    assert_eq!(power_state(Some(17)).as_deref(), Some("on"));
    assert_eq!(power_state(Some(18)).as_deref(), Some("off"));
    assert_eq!(power_state(Some(20)).as_deref(), Some("poweringon"));
    assert_eq!(power_state(Some(21)).as_deref(), Some("poweringoff"));
    assert_eq!(power_state(Some(1)), None);
    assert_eq!(power_state(Some(99)), None);
    assert_eq!(power_state(None), None);
}

#[test]
fn devices_decode_leniently() {
    let d = device(&json!({"Id": "77", "Type": 2000, "PowerState": "weird",
        "DeviceManagement": "not-a-list", "Model": "  "}))
    .unwrap();
    assert_eq!(d.id, 77);
    assert!(!d.is_server());
    assert_eq!(d.power_state, None);
    assert_eq!(d.bmc, None);
    assert_eq!(d.model, None);
    assert!(device(&json!({"DeviceName": "x"})).is_err());
}

#[test]
fn ome_error_envelope() {
    let body = br#"{"error":{"code":"Base.1.0.GeneralError","message":"A general error has occurred.",
        "@Message.ExtendedInfo":[{"MessageId":"CGEN1006","Message":"Unable to complete the request because the resource URI does not exist or is not implemented."}]}}"#;
    assert_eq!(
        error_message(body).unwrap(),
        "CGEN1006: Unable to complete the request because the resource URI does not exist or is not implemented."
    );
    assert_eq!(error_message(br#"{"error":{"message":"m"}}"#).unwrap(), "m");
    assert_eq!(error_message(b"<html>"), None);
}
