//! A standalone server's CIMC, the slice of its Redfish service the gateway reads: the service
//! root, `Systems/<serial>` and its `EthernetInterfaces` (collection, members, and the
//! collection with `$expand=.`), behind HTTP Basic authentication, counted and faulted through
//! its own `/_sim/` control plane. `expand = false` makes it a service without `$expand`
//! support: 501 to the parameter (DSP0266), links only in the collection.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::sim::{Entry, Routes, SimServer, SimShared};

pub fn routes(shared: Arc<SimShared>, server: SimServer, expand: bool) -> Routes {
    let cimc = web::Data::new(Cimc {
        shared,
        server,
        expand,
    });
    Arc::new(move |cfg| {
        cfg.app_data(cimc.clone())
            .route("/redfish/v1/{tail:.*}", web::get().to(dispatch))
            .route("/redfish/v1", web::get().to(dispatch));
    })
}

struct Cimc {
    shared: Arc<SimShared>,
    server: SimServer,
    expand: bool,
}

impl Cimc {
    fn system(&self) -> String {
        format!("/redfish/v1/Systems/{}", self.server.serial_number)
    }

    fn interface(&self, i: usize) -> Value {
        let nic = &self.server.nics[i];
        json!({
            "@odata.id": format!("{}/EthernetInterfaces/{}", self.system(), nic.name),
            "@odata.type": "#EthernetInterface.v1_6_0.EthernetInterface",
            "Id": nic.name,
            "Name": format!("Host Ethernet Interface {}", nic.name),
            "MACAddress": nic.mac.to_ascii_uppercase(),
            "PermanentMACAddress": nic.mac.to_ascii_uppercase(),
            "LinkStatus": "LinkUp",
            "Status": {"State": "Enabled", "Health": "OK"},
        })
    }
}

fn authorized(req: &HttpRequest, shared: &SimShared) -> bool {
    let Some(value) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(u, p)| shared.credentials_ok(u, p)))
        .unwrap_or(false)
}

async fn dispatch(req: HttpRequest, cimc: web::Data<Cimc>) -> HttpResponse {
    let path = req.path().trim_end_matches('/');
    let system = cimc.system();
    let collection = format!("{system}/EthernetInterfaces");
    let key = if path == collection {
        "GET /redfish/v1/Systems/{serial}/EthernetInterfaces"
    } else if path.starts_with(&format!("{collection}/")) {
        "GET /redfish/v1/Systems/{serial}/EthernetInterfaces/{id}"
    } else {
        "GET /redfish/v1/…"
    };
    if let Entry::Respond(r) = cimc.shared.enter(key).await {
        return r;
    }
    if !authorized(&req, &cimc.shared) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Base.1.8.NoValidSession",
            "Authentication required",
        );
    }
    if path == "/redfish/v1" {
        return HttpResponse::Ok().json(json!({
            "@odata.id": "/redfish/v1",
            "Id": "RootService",
            "Vendor": "Cisco",
            "RedfishVersion": "1.8.0",
            "Systems": {"@odata.id": "/redfish/v1/Systems"},
            "ProtocolFeaturesSupported": {
                "ExpandQuery": {"ExpandAll": cimc.expand, "Levels": cimc.expand, "MaxLevels": 1, "NoLinks": cimc.expand},
            },
        }));
    }
    if path == collection {
        let asked = req.query_string().contains("expand");
        if asked && !cimc.expand {
            // DSP0266: an unsupported query parameter is a 501.
            return error(
                StatusCode::NOT_IMPLEMENTED,
                "Base.1.8.QueryNotSupported",
                "Querying is not supported by the implementation",
            );
        }
        let expanded = cimc.expand && asked;
        let members: Vec<Value> = (0..cimc.server.nics.len())
            .map(|i| {
                let full = cimc.interface(i);
                if expanded {
                    full
                } else {
                    json!({"@odata.id": full["@odata.id"]})
                }
            })
            .collect();
        return HttpResponse::Ok().json(json!({
            "@odata.id": collection,
            "@odata.type": "#EthernetInterfaceCollection.EthernetInterfaceCollection",
            "Name": "Ethernet Interface Collection",
            "Members@odata.count": members.len(),
            "Members": members,
        }));
    }
    if let Some(id) = path.strip_prefix(&format!("{collection}/")) {
        if let Some(i) = cimc.server.nics.iter().position(|n| n.name == id) {
            return HttpResponse::Ok().json(cimc.interface(i));
        }
    }
    error(
        StatusCode::NOT_FOUND,
        "Base.1.8.ResourceMissingAtURI",
        "The resource at the URI was not found",
    )
}

/// Redfish's error envelope.
fn error(status: StatusCode, id: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {
            "code": id,
            "message": message,
            "@Message.ExtendedInfo": [{"MessageId": id, "Message": message}],
        }
    }))
}
