//! Intersight's JSON, read leniently where Intersight is lenient (missing optional fields,
//! `Results: null` for an empty page) and strictly where a wrong answer would follow (a MAC that
//! is not a MAC, a page larger than asked).

use serde_json::Value;

use crate::domain::{Bmc, BmcAddress, MacAddress, Nic};
use crate::vendors::paging::Page;

/// One page of a `*.List` answer (`Count` when `$inlinecount=allpages` was asked).
pub fn page(body: Value) -> Result<Page, String> {
    let Value::Object(mut obj) = body else {
        return Err("the answer is not a JSON object".into());
    };
    let count = obj.get("Count").and_then(Value::as_u64);
    let items = match obj.remove("Results") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return Err("`Results` is not an array".into()),
    };
    Ok(Page { items, count })
}

/// A `compute.PhysicalSummary` (a rack unit or a blade, however it is managed).
#[derive(Debug, Clone)]
pub struct PhysicalSummary {
    pub moid: String,
    pub name: String,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub power_state: Option<String>,
    pub bmc: Option<Bmc>,
    /// `compute.RackUnit` or `compute.Blade`.
    pub source_object_type: Option<String>,
    pub management_mode: Option<String>,
}

impl PhysicalSummary {
    /// A rack server Intersight manages without a fabric (`IntersightStandalone`): its NICs
    /// are its CIMC's to tell when Intersight has no adapter inventory for it.
    pub fn is_standalone(&self) -> bool {
        self.management_mode.as_deref() == Some("IntersightStandalone")
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub fn physical_summary(v: &Value) -> Result<PhysicalSummary, String> {
    let moid = text(v, "Moid").ok_or("a physical summary without a Moid")?;
    let name = text(v, "Name").ok_or_else(|| format!("physical summary {moid} has no Name"))?;
    // A CIMC without an address yet reports "" or "0.0.0.0"; an unreadable, unspecified or
    // link-local address is no BMC either (never one to send a CIMC login to).
    let bmc = text(v, "MgmtIpAddress")
        .and_then(|ip| BmcAddress::parse(&ip).ok())
        .filter(BmcAddress::is_usable)
        .map(|address| Bmc::reported(address, Some("cimc".into())));
    Ok(PhysicalSummary {
        name,
        serial: text(v, "Serial"),
        model: text(v, "Model"),
        power_state: text(v, "OperPowerState").map(|p| p.to_ascii_lowercase()),
        bmc,
        source_object_type: text(v, "SourceObjectType"),
        management_mode: text(v, "ManagementMode"),
        moid,
    })
}

/// The Moids among an object's `Ancestors` (an interface's adapter, then its server).
pub fn ancestor_moids(v: &Value) -> Vec<String> {
    v.get("Ancestors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| text(a, "Moid"))
        .collect()
}

/// The server a `server.Profile` is assigned to, if any: its `AssignedServer` reference.
pub fn assigned_server(v: &Value) -> Option<String> {
    v.get("AssignedServer").and_then(|r| text(r, "Moid"))
}

pub fn profile_name(v: &Value) -> Option<String> {
    text(v, "Name")
}

/// Host Ethernet interfaces (vNICs) in DN order, so the order is the same on every read
/// whatever order Intersight returns them in. One without a MAC yet (not deployed) is skipped;
/// a MAC that is not a MAC is an error.
pub fn host_eth_interfaces(items: &[Value]) -> Result<Vec<Nic>, String> {
    let mut rows = items
        .iter()
        .filter_map(|v| {
            let name = text(v, "Name").unwrap_or_default();
            let raw = text(v, "MacAddress")?;
            Some(
                MacAddress::parse(&raw)
                    .map(|mac| (text(v, "Dn").unwrap_or_default(), name.clone(), mac))
                    .map_err(|e| format!("host eth interface {name:?}: {e}")),
            )
        })
        .collect::<Result<Vec<_>, String>>()?;
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    Ok(rows
        .into_iter()
        .map(|(dn, name, mac)| Nic {
            name,
            mac,
            kind: Some("vnic".into()),
            location: (!dn.is_empty()).then_some(dn),
        })
        .collect())
}

/// Intersight's error envelope: `{"code": …, "message": …, "messageId": …}`.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let message = text(&v, "message")?;
    Some(match text(&v, "messageId") {
        Some(id) => format!("{message} ({id})"),
        None => message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_pages_come_as_null_or_missing_results() {
        assert!(
            page(json!({"ObjectType": "compute.PhysicalSummary.List", "Results": null}))
                .unwrap()
                .items
                .is_empty()
        );
        assert!(page(json!({"ObjectType": "x.List"}))
            .unwrap()
            .items
            .is_empty());
        assert!(page(json!({"Results": {}})).is_err());
        assert_eq!(
            page(json!({"Count": 3, "Results": []})).unwrap().count,
            Some(3)
        );
    }

    #[test]
    fn summaries_need_an_identity_and_a_readable_address() {
        let ok = physical_summary(&json!({
            "Moid": "m1", "Name": "srv", "MgmtIpAddress": "10.0.0.5",
            "OperPowerState": "On", "Serial": "WZP1", "Model": "UCSC-C220-M6S",
        }))
        .unwrap();
        assert_eq!(ok.bmc.unwrap().address.to_string(), "10.0.0.5");
        assert_eq!(ok.power_state.as_deref(), Some("on"));
        for unusable in ["0.0.0.0", "::", "169.254.169.254", "fe80::1", "x y", ""] {
            let s = physical_summary(&json!({"Moid": "m", "Name": "s", "MgmtIpAddress": unusable}));
            assert!(s.unwrap().bmc.is_none(), "{unusable:?}");
        }
        assert!(physical_summary(&json!({"Name": "s"})).is_err());
    }

    #[test]
    fn interfaces_are_ordered_by_dn_and_macs_must_be_macs() {
        let nics = host_eth_interfaces(&[
            json!({"Name": "eth1", "MacAddress": "00:25:B5:00:00:02", "Dn": "sys/rack-unit-1/adaptor-1/host-eth-eth1"}),
            json!({"Name": "eth0", "MacAddress": "00:25:B5:00:00:01", "Dn": "sys/rack-unit-1/adaptor-1/host-eth-eth0"}),
        ])
        .unwrap();
        assert_eq!(nics[0].name, "eth0");
        assert_eq!(nics[0].mac.to_string(), "00:25:b5:00:00:01");
        assert!(host_eth_interfaces(&[json!({"Name": "eth0", "MacAddress": "nope"})]).is_err());
        let undeployed = [
            json!({"Name": "eth0"}),
            json!({"Name": "eth1", "MacAddress": ""}),
        ];
        assert!(host_eth_interfaces(&undeployed).unwrap().is_empty());
    }
}
