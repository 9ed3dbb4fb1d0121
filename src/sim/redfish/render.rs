//! The resources of one simulated BMC, as JSON (and the CSDL `$metadata` that names their
//! schemas, so that a validator can check each against DMTF's definitions).

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::flavour::{Flavour, MacLocation};
use super::Bmc;

const ROOT: &str = "/redfish/v1";
const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";
const ACCOUNTS: &str = "/redfish/v1/AccountService/Accounts";
const ROLES: &str = "/redfish/v1/AccountService/Roles";

/// DSP0266's predefined roles and their privileges.
const ROLE_PRIVILEGES: [(&str, &[&str]); 3] = [
    (
        "Administrator",
        &[
            "Login",
            "ConfigureManager",
            "ConfigureUsers",
            "ConfigureSelf",
            "ConfigureComponents",
        ],
    ),
    (
        "Operator",
        &["Login", "ConfigureSelf", "ConfigureComponents"],
    ),
    ("ReadOnly", &["Login", "ConfigureSelf"]),
];

/// The schemas (namespace, CSDL file) the resources below use, for `$metadata`.
const SCHEMAS: &[(&str, &str)] = &[
    ("ServiceRoot", "ServiceRoot.v1_5_0"),
    ("ComputerSystemCollection", "ComputerSystemCollection"),
    ("ComputerSystem", "ComputerSystem.v1_13_0"),
    ("EthernetInterfaceCollection", "EthernetInterfaceCollection"),
    ("EthernetInterface", "EthernetInterface.v1_6_0"),
    ("ChassisCollection", "ChassisCollection"),
    ("Chassis", "Chassis.v1_14_0"),
    ("NetworkAdapterCollection", "NetworkAdapterCollection"),
    ("NetworkAdapter", "NetworkAdapter.v1_7_0"),
    ("PortCollection", "PortCollection"),
    ("Port", "Port.v1_4_0"),
    ("NetworkPortCollection", "NetworkPortCollection"),
    ("NetworkPort", "NetworkPort.v1_2_0"),
    ("ManagerCollection", "ManagerCollection"),
    ("Manager", "Manager.v1_10_0"),
    ("SessionService", "SessionService.v1_1_8"),
    ("AccountService", "AccountService.v1_5_0"),
    ("ManagerAccountCollection", "ManagerAccountCollection"),
    ("ManagerAccount", "ManagerAccount.v1_4_0"),
    ("RoleCollection", "RoleCollection"),
    ("Role", "Role.v1_2_1"),
    ("SessionCollection", "SessionCollection"),
    ("Session", "Session.v1_3_0"),
];

pub fn metadata() -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">\n",
    );
    for (file, namespace) in SCHEMAS.iter().map(|(f, n)| (*f, *n)).chain([
        ("Resource", "Resource.v1_11_0"),
        ("Message", "Message.v1_1_1"),
    ]) {
        xml.push_str(&format!(
            "  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/{file}_v1.xml\">\n    \
             <edmx:Include Namespace=\"{file}\"/>\n",
        ));
        if namespace != file {
            xml.push_str(&format!("    <edmx:Include Namespace=\"{namespace}\"/>\n"));
        }
        xml.push_str("  </edmx:Reference>\n");
    }
    xml.push_str(
        "  <edmx:DataServices>\n    <Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\" \
         Namespace=\"Service\">\n      <EntityContainer Name=\"Service\" \
         Extends=\"ServiceRoot.v1_5_0.ServiceContainer\"/>\n    </Schema>\n  \
         </edmx:DataServices>\n</edmx:Edmx>\n",
    );
    xml
}

/// `Link: <schema>; rel=describedby` for a resource: the DMTF JSON schema of its `@odata.type`.
pub fn described_by(body: &Value) -> Option<String> {
    let t = body.get("@odata.type")?.as_str()?.trim_start_matches('#');
    let (namespace, _) = t.rsplit_once('.')?;
    Some(format!(
        "<http://redfish.dmtf.org/schemas/v1/{namespace}.json>; rel=describedby"
    ))
}

/// A strong ETag of the resource's JSON (its content, so it changes when the resource does).
pub fn etag(body: &Value) -> String {
    let d = Sha256::digest(body.to_string());
    let h: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("\"{h}\"")
}

/// An unguessable-enough session token for a simulator (never a secret of anything real).
pub fn token(serial: &str, id: u64) -> String {
    let digest = Sha256::digest(format!("{serial}/{id}/{:?}", std::time::SystemTime::now()));
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

pub fn session(id: u64, user: &str) -> Value {
    json!({
        "@odata.id": format!("{SESSIONS}/{id}"),
        "@odata.type": "#Session.v1_3_0.Session",
        "Id": id.to_string(),
        "Name": "User Session",
        "UserName": user,
    })
}

struct Paths {
    system: String,
    chassis: String,
    manager: String,
    adapter: String,
}

fn paths(bmc: &Bmc) -> Paths {
    let f = bmc.flavour;
    let chassis = format!("{ROOT}/Chassis/{}", f.chassis_id());
    Paths {
        system: format!("{ROOT}/Systems/{}", f.system_id(&bmc.server.serial_number)),
        adapter: format!("{chassis}/NetworkAdapters/{}", adapter_id(f)),
        chassis,
        manager: format!("{ROOT}/Managers/{}", f.manager_id()),
    }
}

fn adapter_id(f: Flavour) -> &'static str {
    match f {
        Flavour::Lenovo => "slot-1",
        _ => "1",
    }
}

/// The counter key of a path: ids replaced by placeholders, so counts add up per resource type.
pub fn endpoint_key(bmc: &Bmc, path: &str) -> String {
    let p = paths(bmc);
    let replaced = path
        .replace(&p.adapter, "/redfish/v1/Chassis/{id}/NetworkAdapters/{id}")
        .replace(&p.system, "/redfish/v1/Systems/{id}")
        .replace(&p.chassis, "/redfish/v1/Chassis/{id}")
        .replace(&p.manager, "/redfish/v1/Managers/{id}");
    // A member of a collection (interface, port, session): its id is the last segment.
    for parent in ["EthernetInterfaces", "Ports", "NetworkPorts", "Sessions"] {
        if let Some((head, _)) = replaced.split_once(&format!("/{parent}/")) {
            return format!("{head}/{parent}/{{id}}");
        }
    }
    replaced
}

fn link(path: &str) -> Value {
    json!({"@odata.id": path})
}

fn collection(path: &str, kind: &str, name: &str, members: Vec<Value>) -> Value {
    json!({
        "@odata.id": path,
        "@odata.type": format!("#{kind}.{kind}"),
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members,
    })
}

/// The resource at `path` (no trailing slash), or `None` for a 404. `expand` inlines the
/// members of a collection (`$expand=.`); `sessions` are the ids of the open sessions.
pub fn resource(bmc: &Bmc, path: &str, expand: bool, sessions: &[u64]) -> Option<Value> {
    let f = bmc.flavour;
    let s = &bmc.server;
    let p = paths(bmc);
    let members = |items: Vec<(String, Value)>| -> Vec<Value> {
        items
            .into_iter()
            .map(|(id, full)| if expand { full } else { link(&id) })
            .collect()
    };
    let interfaces = || -> Vec<(String, Value)> {
        if f.mac_location() != MacLocation::EthernetInterfaces {
            return Vec::new();
        }
        s.nics
            .iter()
            .map(|n| {
                let id = format!("{}/EthernetInterfaces/{}", p.system, n.name);
                let body = json!({
                    "@odata.id": id,
                    "@odata.type": "#EthernetInterface.v1_6_0.EthernetInterface",
                    "Id": n.name,
                    "Name": format!("Ethernet Interface {}", n.name),
                    "MACAddress": f.mac(&n.mac),
                    "PermanentMACAddress": f.mac(&n.mac),
                    "LinkStatus": "LinkUp",
                    "Status": {"State": "Enabled", "Health": "OK"},
                });
                (id, body)
            })
            .collect()
    };
    let ports = |network_ports: bool| -> Vec<(String, Value)> {
        s.nics
            .iter()
            .map(|n| {
                let body = if network_ports {
                    let id = format!("{}/NetworkPorts/{}", p.adapter, n.name);
                    json!({
                        "@odata.id": id,
                        "@odata.type": "#NetworkPort.v1_2_0.NetworkPort",
                        "Id": n.name,
                        "Name": format!("Physical Port {}", n.name),
                        "PhysicalPortNumber": n.name,
                        "AssociatedNetworkAddresses": [f.mac(&n.mac)],
                        "LinkStatus": "Up",
                    })
                } else {
                    let id = format!("{}/Ports/{}", p.adapter, n.name);
                    json!({
                        "@odata.id": id,
                        "@odata.type": "#Port.v1_4_0.Port",
                        "Id": n.name,
                        "Name": format!("Port {}", n.name),
                        "PortId": n.name,
                        "LinkStatus": "LinkUp",
                        "Ethernet": {"AssociatedMACAddresses": [f.mac(&n.mac)]},
                    })
                };
                (
                    body["@odata.id"].as_str().unwrap_or_default().to_owned(),
                    body,
                )
            })
            .collect()
    };
    let body = match path {
        "/redfish" => json!({"v1": "/redfish/v1/"}),
        ROOT => {
            let mut root = json!({
                "@odata.id": "/redfish/v1/",
                "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
                "Id": "RootService",
                "Name": "Root Service",
                "RedfishVersion": "1.8.0",
                "UUID": uuid(&s.serial_number, 0),
                "Systems": link(&format!("{ROOT}/Systems")),
                "Chassis": link(&format!("{ROOT}/Chassis")),
                "Managers": link(&format!("{ROOT}/Managers")),
                "AccountService": link(&format!("{ROOT}/AccountService")),
                "Links": {},
                "ProtocolFeaturesSupported": {
                    "ExpandQuery": {
                        "ExpandAll": false,
                        "Levels": f.expand(),
                        "Links": f.expand(),
                        "NoLinks": f.expand(),
                        "MaxLevels": 1,
                    },
                    "FilterQuery": false,
                    "SelectQuery": false,
                },
            });
            if let Some(v) = f.vendor() {
                root["Vendor"] = json!(v);
                root["Product"] = json!(format!("{v} BMC"));
            }
            if f.sessions() {
                root["SessionService"] = link(&format!("{ROOT}/SessionService"));
                root["Links"] = json!({"Sessions": link(SESSIONS)});
            }
            root
        }
        "/redfish/v1/odata" => json!({
            "@odata.context": "/redfish/v1/$metadata",
            "value": [
                {"name": "Service", "kind": "Singleton", "url": "/redfish/v1/"},
                {"name": "Systems", "kind": "Singleton", "url": "/redfish/v1/Systems"},
                {"name": "Chassis", "kind": "Singleton", "url": "/redfish/v1/Chassis"},
                {"name": "Managers", "kind": "Singleton", "url": "/redfish/v1/Managers"},
            ],
        }),
        "/redfish/v1/Systems" => collection(
            path,
            "ComputerSystemCollection",
            "Computer System Collection",
            vec![link(&p.system)],
        ),
        "/redfish/v1/Chassis" => collection(
            path,
            "ChassisCollection",
            "Chassis Collection",
            vec![link(&p.chassis)],
        ),
        "/redfish/v1/Managers" => collection(
            path,
            "ManagerCollection",
            "Manager Collection",
            vec![link(&p.manager)],
        ),
        "/redfish/v1/AccountService" => json!({
            "@odata.id": path,
            "@odata.type": "#AccountService.v1_5_0.AccountService",
            "Id": "AccountService",
            "Name": "Account Service",
            "ServiceEnabled": true,
            "Accounts": link(ACCOUNTS),
            "Roles": link(ROLES),
        }),
        ACCOUNTS => collection(
            path,
            "ManagerAccountCollection",
            "Accounts Collection",
            vec![link(&format!("{ACCOUNTS}/1"))],
        ),
        _ if path == format!("{ACCOUNTS}/1") => json!({
            "@odata.id": path,
            "@odata.type": "#ManagerAccount.v1_4_0.ManagerAccount",
            "Id": "1",
            "Name": "User Account",
            "UserName": bmc.shared.username,
            "RoleId": "Administrator",
            "Enabled": true,
            "Locked": false,
            "Password": null,
            "Links": {"Role": link(&format!("{ROLES}/Administrator"))},
        }),
        ROLES => collection(
            path,
            "RoleCollection",
            "Roles Collection",
            ROLE_PRIVILEGES
                .iter()
                .map(|(r, _)| link(&format!("{ROLES}/{r}")))
                .collect(),
        ),
        _ if path.starts_with(&format!("{ROLES}/")) => {
            let id = path.rsplit('/').next().unwrap_or_default();
            let (role, privileges) = ROLE_PRIVILEGES.iter().find(|(r, _)| *r == id)?;
            json!({
                "@odata.id": path,
                "@odata.type": "#Role.v1_2_1.Role",
                "Id": role,
                "Name": format!("{role} Role"),
                "RoleId": role,
                "IsPredefined": true,
                "AssignedPrivileges": privileges,
            })
        }
        "/redfish/v1/SessionService" if f.sessions() => json!({
            "@odata.id": path,
            "@odata.type": "#SessionService.v1_1_8.SessionService",
            "Id": "SessionService",
            "Name": "Session Service",
            "ServiceEnabled": true,
            "SessionTimeout": 1800,
            "Sessions": link(SESSIONS),
        }),
        SESSIONS if f.sessions() => collection(
            path,
            "SessionCollection",
            "Session Collection",
            sessions
                .iter()
                .map(|id| link(&format!("{SESSIONS}/{id}")))
                .collect(),
        ),
        _ if path == p.system => json!({
            "@odata.id": p.system,
            "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
            "Id": f.system_id(&s.serial_number),
            "Name": "System",
            "SystemType": "Physical",
            "HostName": s.name,
            "Manufacturer": f.manufacturer(),
            "Model": s.model,
            "SerialNumber": s.serial_number,
            "UUID": uuid(&s.serial_number, 1),
            "PowerState": if s.power_state.eq_ignore_ascii_case("on") { "On" } else { "Off" },
            "Status": {"State": "Enabled", "Health": "OK"},
            "EthernetInterfaces": link(&format!("{}/EthernetInterfaces", p.system)),
            "Links": {
                "Chassis": [link(&p.chassis)],
                "ManagedBy": [link(&p.manager)],
            },
        }),
        _ if path == format!("{}/EthernetInterfaces", p.system) => collection(
            path,
            "EthernetInterfaceCollection",
            "Ethernet Interface Collection",
            members(interfaces()),
        ),
        _ if path == p.chassis => {
            let mut chassis = json!({
                "@odata.id": p.chassis,
                "@odata.type": "#Chassis.v1_14_0.Chassis",
                "Id": f.chassis_id(),
                "Name": "Computer System Chassis",
                "ChassisType": "RackMount",
                "Manufacturer": f.manufacturer(),
                "Model": s.model,
                "SerialNumber": s.serial_number,
                "Status": {"State": "Enabled", "Health": "OK"},
                "Links": {
                    "ComputerSystems": [link(&p.system)],
                    "ManagedBy": [link(&p.manager)],
                },
            });
            if f.mac_location() != MacLocation::EthernetInterfaces {
                chassis["NetworkAdapters"] = link(&format!("{}/NetworkAdapters", p.chassis));
            }
            chassis
        }
        _ if path == format!("{}/NetworkAdapters", p.chassis)
            && f.mac_location() != MacLocation::EthernetInterfaces =>
        {
            collection(
                path,
                "NetworkAdapterCollection",
                "Network Adapter Collection",
                vec![link(&p.adapter)],
            )
        }
        _ if path == p.adapter && f.mac_location() != MacLocation::EthernetInterfaces => {
            let mut adapter = json!({
                "@odata.id": p.adapter,
                "@odata.type": "#NetworkAdapter.v1_7_0.NetworkAdapter",
                "Id": adapter_id(f),
                "Name": "Network Adapter",
                "Manufacturer": "Intel Corporation",
                "Model": "Ethernet Controller E810-XXV",
                "Status": {"State": "Enabled", "Health": "OK"},
            });
            if f.mac_location() == MacLocation::NetworkPorts {
                adapter["NetworkPorts"] = link(&format!("{}/NetworkPorts", p.adapter));
            } else {
                adapter["Ports"] = link(&format!("{}/Ports", p.adapter));
            }
            adapter
        }
        _ if path == format!("{}/Ports", p.adapter) && f.mac_location() == MacLocation::Ports => {
            collection(
                path,
                "PortCollection",
                "Port Collection",
                members(ports(false)),
            )
        }
        _ if path == format!("{}/NetworkPorts", p.adapter)
            && f.mac_location() == MacLocation::NetworkPorts =>
        {
            collection(
                path,
                "NetworkPortCollection",
                "Network Port Collection",
                members(ports(true)),
            )
        }
        _ if path == p.manager => json!({
            "@odata.id": p.manager,
            "@odata.type": "#Manager.v1_10_0.Manager",
            "Id": f.manager_id(),
            "Name": "Manager",
            "ManagerType": "BMC",
            "FirmwareVersion": "1.0.0",
            "UUID": uuid(&s.serial_number, 2),
            "Status": {"State": "Enabled", "Health": "OK"},
            "Links": {
                "ManagerForServers": [link(&p.system)],
                "ManagerForChassis": [link(&p.chassis)],
            },
        }),
        _ => {
            // Members: an interface, a port, a session.
            let (parent, id) = path.rsplit_once('/')?;
            if parent == SESSIONS && f.sessions() {
                let id: u64 = id.parse().ok()?;
                return sessions.contains(&id).then(|| session(id, "-"));
            }
            let all = if parent == format!("{}/EthernetInterfaces", p.system) {
                interfaces()
            } else if parent == format!("{}/Ports", p.adapter)
                && f.mac_location() == MacLocation::Ports
            {
                ports(false)
            } else if parent == format!("{}/NetworkPorts", p.adapter)
                && f.mac_location() == MacLocation::NetworkPorts
            {
                ports(true)
            } else {
                return None;
            };
            return all.into_iter().find(|(p, _)| p == path).map(|(_, v)| v);
        }
    };
    Some(body)
}

/// A stable UUID per (serial, resource).
fn uuid(serial: &str, n: u8) -> String {
    let d = Sha256::digest(format!("{serial}/{n}"));
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}
