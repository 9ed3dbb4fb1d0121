//! Cisco UCS Manager simulator: the XML API on `POST /nuova`, faithful enough for ucsmsdk
//! (see `vendor-notes/ucsm.md` §6–7). API errors are answered inside HTTP 200 bodies with the
//! real codes: 551 bad credentials, 552 missing/expired cookie, 555 logout of an unknown
//! session, `ERR-xml-parse-error` for what cannot be parsed (including unknown methods).
//!
//! The request parser is the gateway's own small XML reader: a test peer sharing it can only
//! hide decoding bugs of requests, which ucsmsdk's conformance test exercises independently.

mod filter;
pub(crate) mod model;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, HttpResponse};

use super::{Entry, Routes, SimShared};
use crate::vendors::ucsm::xml::{self, escape_attr, Element};
use filter::Filter;
use model::Model;

/// Reported as `outVersion`: ucsmsdk needs a non-empty one to skip a firmware query.
const VERSION: &str = "4.2(3d)";
const REFRESH_PERIOD_S: u32 = 600;

struct UcsmSim {
    shared: Arc<SimShared>,
    model: Model,
    /// `outVersion` of logins.
    version: &'static str,
    /// cookie → session epoch at login.
    sessions: Mutex<HashMap<String, u64>>,
    logins: AtomicU64,
}

pub fn routes(shared: Arc<SimShared>) -> Routes {
    let model = Model::build(&shared.fleet());
    routes_with(shared, model, "/nuova", VERSION)
}

/// The XML API on `path` over `model`: UCS Manager's `/nuova`, or UCS Central's
/// `/xmlIM/central-mgr` over Central's own tree.
pub(crate) fn routes_with(
    shared: Arc<SimShared>,
    model: Model,
    path: &'static str,
    version: &'static str,
) -> Routes {
    let sim = web::Data::new(UcsmSim {
        model,
        version,
        shared,
        sessions: Mutex::new(HashMap::new()),
        logins: AtomicU64::new(0),
    });
    Arc::new(move |cfg| {
        cfg.app_data(sim.clone()).route(path, web::post().to(nuova));
    })
}

/// Any Content-Type is accepted: clients send form-urlencoded, text/xml or nothing.
async fn nuova(sim: web::Data<UcsmSim>, body: web::Bytes) -> HttpResponse {
    let request = xml::parse(&body);
    let method = match &request {
        Ok(root) => root.name.as_str(),
        Err(_) => "xml-parse-error",
    };
    if let Entry::Respond(r) = sim.shared.enter(method).await {
        return r;
    }
    let answer = match &request {
        Ok(root) => sim.dispatch(root),
        Err(e) => parse_error(e),
    };
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .body(answer)
}

impl UcsmSim {
    fn dispatch(&self, req: &Element) -> String {
        match req.name.as_str() {
            "aaaLogin" => self.login(req),
            "aaaRefresh" => self.refresh(req),
            "aaaLogout" => self.logout(req),
            "aaaKeepAlive"
            | "configResolveClass"
            | "configResolveClasses"
            | "configResolveDn"
            | "configResolveDns"
            | "configResolveChildren"
            | "configScope" => {
                let cookie = req.attr("cookie").unwrap_or("");
                if !self.session_valid(cookie) {
                    return api_error(req, "552", "service-unavailable", "Authorization required");
                }
                self.query(req, cookie).unwrap_or_else(|e| parse_error(&e))
            }
            other => parse_error(&format!("unknown method {other}")),
        }
    }

    fn session_valid(&self, cookie: &str) -> bool {
        let epoch = self
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.get(cookie).copied());
        epoch.is_some_and(|e| self.shared.session_alive(e))
    }

    fn new_session(&self) -> String {
        let cookie = format!(
            "{}/{}",
            chrono::Utc::now().timestamp(),
            uuid::Uuid::new_v4()
        );
        if let Ok(mut sessions) = self.sessions.lock() {
            // Expired sessions are dead forever (epochs only grow): drop them as we go.
            sessions.retain(|_, e| self.shared.session_alive(*e));
            sessions.insert(cookie.clone(), self.shared.session_epoch());
        }
        cookie
    }

    fn end_session(&self, cookie: &str) -> bool {
        let epoch = self.sessions.lock().ok().and_then(|mut s| s.remove(cookie));
        epoch.is_some_and(|e| self.shared.session_alive(e))
    }

    fn login(&self, req: &Element) -> String {
        let user = req.attr("inName").unwrap_or("");
        if !self
            .shared
            .credentials_ok(user, req.attr("inPassword").unwrap_or(""))
        {
            return api_error(req, "551", "unidentified-fail", "Authentication failed");
        }
        let cookie = self.new_session();
        format!(
            concat!(
                r#"<aaaLogin cookie="" response="yes" outCookie="{c}" outRefreshPeriod="{r}" "#,
                r#"outPriv="admin,read-only" outDomains="" outChannel="noencssl" "#,
                r#"outEvtChannel="noencssl" outSessionId="web_{s}" outVersion="{v}" "#,
                r#"outName="{u}"> </aaaLogin>"#
            ),
            c = escape_attr(&cookie),
            r = REFRESH_PERIOD_S,
            s = 49_000 + self.logins.fetch_add(1, Ordering::Relaxed),
            v = self.version,
            u = escape_attr(user),
        )
    }

    /// A refresh hands out a new cookie and kills the old one.
    fn refresh(&self, req: &Element) -> String {
        let user = req.attr("inName").unwrap_or("");
        if !self
            .shared
            .credentials_ok(user, req.attr("inPassword").unwrap_or(""))
        {
            return api_error(req, "551", "unidentified-fail", "Authentication failed");
        }
        if !self.end_session(req.attr("inCookie").unwrap_or("")) {
            return api_error(req, "552", "service-unavailable", "Authorization required");
        }
        format!(
            concat!(
                r#"<aaaRefresh cookie="" response="yes" outCookie="{}" outRefreshPeriod="{}" "#,
                r#"outPriv="admin,read-only" outDomains="" outChannel="noencssl" "#,
                r#"outEvtChannel="noencssl"> </aaaRefresh>"#
            ),
            escape_attr(&self.new_session()),
            REFRESH_PERIOD_S
        )
    }

    fn logout(&self, req: &Element) -> String {
        if !self.end_session(req.attr("inCookie").unwrap_or("")) {
            return api_error(req, "555", "unidentified-fail", "Session not found");
        }
        r#"<aaaLogout cookie="" response="yes" outStatus="success"> </aaaLogout>"#.into()
    }

    fn query(&self, req: &Element, cookie: &str) -> Result<String, String> {
        if req.name == "aaaKeepAlive" {
            return Ok(format!(
                r#"<aaaKeepAlive cookie="{}" response="yes"> </aaaKeepAlive>"#,
                escape_attr(cookie)
            ));
        }
        let answer = self.select(req)?;
        Ok(self.render(req, cookie, &answer))
    }

    /// Which objects a query method asks for.
    fn select<'a>(&self, req: &'a Element) -> Result<Answer<'a>, String> {
        let filter = in_filter(req)?;
        let m = &self.model;
        let mut answer = Answer::default();
        match req.name.as_str() {
            "configResolveClass" => {
                let class = required(req, "classId")?;
                answer.echo.push(("classId", class));
                answer.found = m.class_query(class, filter.as_ref());
            }
            "configResolveClasses" => {
                answer.found = list(req, "inIds")
                    .flat_map(|c| m.class_query(c, None))
                    .collect();
            }
            "configResolveDn" => {
                let dn = required(req, "dn")?;
                answer.echo.push(("dn", dn));
                answer.single = true;
                answer.found = m.get(dn).into_iter().collect();
            }
            "configResolveDns" => {
                for dn in list(req, "inDns") {
                    match m.get(dn) {
                        Some(i) => answer.found.push(i),
                        None => answer.unresolved.push(dn),
                    }
                }
            }
            "configResolveChildren" => {
                let dn = required(req, "inDn")?;
                let class = req.attr("classId").filter(|c| !c.is_empty());
                answer
                    .echo
                    .extend([("classId", class.unwrap_or("")), ("inDn", dn)]);
                answer.found = m.children_query(dn, class, filter.as_ref(), false);
            }
            _ => {
                // configScope: a subtree, optionally recursive.
                let dn = required(req, "dn")?;
                let class = req.attr("inClass").filter(|c| !c.is_empty());
                let recursive = req.attr("inRecursive") == Some("true");
                answer.echo.push(("dn", dn));
                answer.found = m.children_query(dn, class, filter.as_ref(), recursive);
            }
        }
        Ok(answer)
    }

    fn render(&self, req: &Element, cookie: &str, answer: &Answer<'_>) -> String {
        let hierarchical = req.attr("inHierarchical") == Some("true");
        let mut out = String::with_capacity(512 + answer.found.len() * 2048);
        out.push('<');
        out.push_str(&req.name);
        for (k, v) in answer.echo.iter().filter(|(_, v)| !v.is_empty()) {
            out.push_str(&format!(" {k}=\"{}\"", escape_attr(v)));
        }
        out.push_str(&format!(
            r#" cookie="{}" response="yes">"#,
            escape_attr(cookie)
        ));
        let wrapper = if answer.single {
            "outConfig"
        } else {
            "outConfigs"
        };
        out.push_str(&format!("<{wrapper}>"));
        for idx in &answer.found {
            self.model.render(*idx, hierarchical, &mut out);
        }
        out.push_str(&format!("</{wrapper}>"));
        if req.name == "configResolveDns" {
            out.push_str("<outUnresolved>");
            for dn in &answer.unresolved {
                out.push_str(&format!(r#"<dn value="{}"/>"#, escape_attr(dn)));
            }
            out.push_str("</outUnresolved>");
        }
        out.push_str(&format!("</{}>", req.name));
        out
    }
}

/// The objects a query selected, and what the answer element echoes back.
#[derive(Default)]
struct Answer<'a> {
    echo: Vec<(&'static str, &'a str)>,
    /// `configResolveDn` answers in a singular `<outConfig>`.
    single: bool,
    found: Vec<usize>,
    unresolved: Vec<&'a str>,
}

fn in_filter(req: &Element) -> Result<Option<Filter>, String> {
    match req.children.iter().find(|c| c.name == "inFilter") {
        None => Ok(None),
        Some(f) => match f.children.first() {
            None => Ok(None),
            Some(first) => Filter::from_element(first).map(Some),
        },
    }
}

fn required<'a>(req: &'a Element, attr: &str) -> Result<&'a str, String> {
    req.attr(attr)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{} requires {attr}", req.name))
}

/// `value` attributes of the items of a list child such as `<inDns><dn value=…/></inDns>`.
fn list<'a>(req: &'a Element, container: &'static str) -> impl Iterator<Item = &'a str> {
    req.children
        .iter()
        .filter(move |c| c.name == container)
        .flat_map(|c| c.children.iter())
        .filter_map(|item| item.attr("value"))
}

fn api_error(req: &Element, code: &str, result: &str, descr: &str) -> String {
    format!(
        r#"<{m} cookie="{c}" response="yes" errorCode="{code}" invocationResult="{result}" errorDescr="{d}"> </{m}>"#,
        m = req.name,
        c = escape_attr(req.attr("cookie").unwrap_or("")),
        d = escape_attr(descr),
    )
}

fn parse_error(detail: &str) -> String {
    format!(
        r#"<error cookie="" response="yes" errorCode="ERR-xml-parse-error" invocationResult="594" errorDescr="{}"/>"#,
        escape_attr(&format!("XML PARSING ERROR: {detail}"))
    )
}
