//! The fleet index over HTTP: `GET /servers` (listing and reverse lookups), `POST
//! /servers/lookup` (many names in one request), `GET /fleet` (each system's index and
//! sweeps), `GET /fleet/conflicts`, and `POST /fleet/sweep` (admin: sweep now).

use std::collections::HashMap;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::auth::is_admin;
use super::problem::{types, Problem};
use super::request_id::RequestId;
use crate::domain::{BmcAddress, MacAddress, ServerName, ServerRecord, Vendor};
use crate::fleet::{Conflict, FleetSystem, SortKey};
use crate::lookup::LookupService;

/// The most servers one page of `GET /servers` holds, and the most names one
/// `POST /servers/lookup` takes.
pub const MAX_PAGE: usize = 1000;
const DEFAULT_PAGE: usize = 100;
/// Longest text filter accepted (`q`, `model`, `serial`): longer cannot match a vendor field
/// worth searching and only costs the scan.
const MAX_FILTER_LEN: usize = 256;

#[derive(Debug, Deserialize)]
struct ListQuery {
    vendor: Option<String>,
    system: Option<String>,
    model: Option<String>,
    mac: Option<String>,
    serial: Option<String>,
    bmc: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

impl ListQuery {
    /// An empty free-text parameter (`?system=&mac=`, as forms send them) filters nothing.
    fn without_empty(self) -> Self {
        let set = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Self {
            // The spec lists vendor as an enum: an empty one is refused like any other.
            vendor: self.vendor,
            system: set(self.system),
            model: set(self.model),
            // The spec gives mac a pattern an empty string does not match.
            mac: self.mac,
            serial: set(self.serial),
            bmc: set(self.bmc),
            q: set(self.q),
            cursor: set(self.cursor),
            limit: self.limit,
        }
    }
}

/// One page of servers.
#[derive(Serialize, ToSchema)]
pub struct ServerList {
    pub servers: Vec<ServerRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Systems this listing covers that have no index yet (never swept successfully): their
    /// servers are missing from it.
    pub unindexed: Vec<String>,
    /// Systems whose index is older than `fleet.max_age` (their sweeps fail): their servers
    /// are listed with `"stale": true`.
    pub stale: Vec<String>,
}

/// Separates the three parts of a sort key inside a cursor (a control character: no name,
/// system name or id carries one).
const CURSOR_SEPARATOR: char = '\u{1f}';

/// base64url without padding; decoding tolerates the trailing bits of a hand-made cursor.
const CURSOR_ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn encode_cursor(key: &SortKey) -> String {
    CURSOR_ENGINE.encode(format!(
        "{}{CURSOR_SEPARATOR}{}{CURSOR_SEPARATOR}{}",
        key.0, key.1, key.2
    ))
}

/// Any string of the cursor alphabet is a position in the listing order (a cursor made by
/// hand starts after whatever key it spells); `None` for other characters.
fn decode_cursor(cursor: &str) -> Option<SortKey> {
    if !cursor
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    // A length of 4k + 1 cannot be base64; its last character carries no whole byte.
    let usable = if cursor.len() % 4 == 1 {
        &cursor[..cursor.len() - 1]
    } else {
        cursor
    };
    let bytes = CURSOR_ENGINE.decode(usable).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let mut parts = text.splitn(3, CURSOR_SEPARATOR).map(str::to_owned);
    Some((
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    ))
}

fn bad(req: &HttpRequest, rid: &RequestId, title: &str, detail: String) -> HttpResponse {
    super::routes::bad_request(types::INVALID_QUERY, title, detail, req.path(), rid)
}

/// A text filter within its length bound (empty ones were dropped by `without_empty`).
fn text_filter(name: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(v) if v.len() > MAX_FILTER_LEN => Err(format!(
            "{name} is {} bytes long; at most {MAX_FILTER_LEN} are accepted",
            v.len()
        )),
        other => Ok(other),
    }
}

/// Lists the servers the fleet index holds, filtered, in a stable order (name, then system,
/// then the system's id), one page at a time.
///
/// Reverse lookups are filters: `?mac=aa:bb:cc:dd:ee:ff`, `?serial=`, `?bmc=10.1.2.3`. The
/// index is refreshed by background sweeps (see `GET /fleet`); a server added since the last
/// sweep of its system is not listed yet (but `GET /servers/{name}` finds it). Pages are
/// keyset-paged: `next_cursor` resumes after the last server returned, so servers added or
/// removed between pages never shift the others. The weak `ETag` changes when the indexed
/// content of the covered systems does; send it back in `If-None-Match` to get `304`.
#[utoipa::path(
    get,
    path = "/servers",
    tag = "fleet",
    params(
        ("vendor" = Option<super::openapi::VendorParam>, Query, description = "Only this vendor's systems"),
        ("system" = Option<String>, Query, description = "Only this configured system (its `name`; another name finds nothing)"),
        ("model" = Option<String>, Query, description = "Model contains this text (case-insensitive)"),
        ("mac" = Option<String>, Query, description = "Has a NIC with this MAC: `aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff` or `aabbccddeeff`", example = "00:17:a4:77:00:10",
            pattern = "^(?:(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}|[0-9A-Fa-f]{4}\\.[0-9A-Fa-f]{4}\\.[0-9A-Fa-f]{4}|[0-9A-Fa-f]{12})$"),
        ("serial" = Option<String>, Query, description = "Serial number, exactly (case-insensitive)"),
        ("bmc" = Option<String>, Query, description = "BMC address: IP address or host name (a string that is neither finds nothing)", example = "10.1.0.17"),
        ("q" = Option<String>, Query, description = "Name (or another name the system answers it under) contains this text (case-insensitive)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page", pattern = "^[A-Za-z0-9_-]*$"),
        ("limit" = Option<usize>, Query, description = "Servers per page, 1-1000 (default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "One page of servers", body = ServerList,
            headers(("ETag" = String, description = "Weak validator of this page's content"))),
        (status = 304, description = "`If-None-Match` matched: the page is unchanged"),
        (status = 400, description = "Invalid vendor, MAC, cursor or limit, or a text filter over 256 bytes", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown bearer token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_servers(
    req: HttpRequest,
    lookup: web::Data<LookupService>,
    rid: RequestId,
) -> HttpResponse {
    let query = match web::Query::<ListQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner().without_empty(),
        Err(e) => return bad(&req, &rid, "Invalid query", e.to_string()),
    };
    let vendor = match query.vendor.as_deref().map(Vendor::parse).transpose() {
        Ok(v) => v,
        Err(e) => return bad(&req, &rid, "Invalid vendor", e.to_string()),
    };
    let mac = match query.mac.as_deref().map(MacAddress::parse).transpose() {
        Ok(m) => m,
        Err(e) => return bad(&req, &rid, "Invalid MAC address", e.to_string()),
    };
    // A BMC address no server can have, or a system that is not configured, is a search
    // that finds nothing, not a malformed request.
    let (bmc, impossible) = match query.bmc.as_deref().map(BmcAddress::parse).transpose() {
        Ok(b) => (b, false),
        Err(_) => (None, true),
    };
    let impossible = impossible
        || query
            .system
            .as_ref()
            .is_some_and(|system| !lookup.systems().iter().any(|s| s.name() == system));
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return bad(
            &req,
            &rid,
            "Invalid limit",
            format!("limit must be within 1..={MAX_PAGE}, got {limit}"),
        );
    }
    let after = match query.cursor.as_deref().map(decode_cursor) {
        Some(None) => {
            return bad(
                &req,
                &rid,
                "Invalid cursor",
                "a cursor is base64url (A-Z a-z 0-9 - _): pass back a page's next_cursor".into(),
            )
        }
        Some(Some(k)) => Some(k),
        None => None,
    };
    let texts = (|| {
        Ok::<_, String>((
            text_filter("model", query.model)?,
            text_filter("serial", query.serial)?,
            text_filter("q", query.q)?,
        ))
    })();
    let (model, serial, q) = match texts {
        Ok(t) => t,
        Err(detail) => return bad(&req, &rid, "Filter too long", detail),
    };
    let filter = crate::fleet::Filter {
        vendor,
        system: query.system,
        model,
        mac,
        serial,
        bmc,
        q,
    };
    let mut listing = lookup.fleet().list(&filter, after.as_ref(), limit);
    if impossible {
        listing.items.clear();
        listing.next = None;
    }
    // The page is determined by the indexed content, the filter, the cursor and the limit.
    let mut h = Sha256::new();
    h.update(listing.version.as_bytes());
    h.update(format!("{filter:?}|{after:?}|{limit}").as_bytes());
    let etag = format!("W/\"{}\"", hex::encode(&h.finalize()[..12]));
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == etag.trim_start_matches("W/")
            })
        });
    if matches {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .json(ServerList {
            servers: listing.items,
            next_cursor: listing.next.as_ref().map(encode_cursor),
            unindexed: listing.unindexed,
            stale: listing.stale,
        })
}

/// A bulk lookup.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// 1-1000 server names, each as `GET /servers/{name}` takes it.
    #[schema(example = json!(["hpe-synergy-001", "ucs-blade-002"]), max_items = 1000, min_items = 1)]
    #[serde(deserialize_with = "at_most_max_page")]
    pub names: Vec<String>,
    /// Ask only this vendor's systems (as `?vendor=`; any letter case).
    #[schema(value_type = Option<super::openapi::VendorParam>)]
    pub vendor: Option<String>,
}

/// The names, refused while parsing once there are more than [`MAX_PAGE`] (not after a
/// megabyte of them has been collected).
fn at_most_max_page<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Names;
    impl<'de> serde::de::Visitor<'de> for Names {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_PAGE} names")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut names = Vec::new();
            while let Some(name) = seq.next_element::<String>()? {
                if names.len() == MAX_PAGE {
                    return Err(serde::de::Error::custom(format!(
                        "more than {MAX_PAGE} names"
                    )));
                }
                names.push(name);
            }
            Ok(names)
        }
    }
    d.deserialize_seq(Names)
}

/// One name's answer: `record` on 200, `problem` otherwise.
#[derive(Clone, Serialize, ToSchema)]
pub struct LookupResult {
    pub name: String,
    /// The status `GET /servers/{name}` would have answered.
    pub status: u16,
    /// `hit`, `miss`, `stale` or `index` (as `X-Cache`) on 200.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<&'static str>,
    // The record's JSON as `GET /servers/{name}` answers it, embedded as rendered once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ServerRecord>)]
    pub record: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

#[derive(Serialize, ToSchema)]
pub struct LookupResponse {
    /// In the order of the request's names (a name given twice is answered twice).
    pub results: Vec<LookupResult>,
    pub found: usize,
    pub not_found: usize,
    /// Any other status (invalid name, ambiguous, system failures, throttled).
    pub failed: usize,
}

/// Looks up many servers in one request: each name is answered from the cache or the fleet
/// index when they can, else by one live lookup, coalesced with identical lookups under way,
/// a few at a time (`fleet.lookup_concurrency`). Every name gets its own result: the record,
/// or the problem `GET /servers/{name}` would have answered. The request fails as a whole
/// only when it is malformed.
#[utoipa::path(
    post,
    path = "/servers/lookup",
    tag = "servers",
    request_body = LookupRequest,
    responses(
        (status = 200, description = "One result per name", body = LookupResponse),
        (status = 400, description = "Not JSON of this shape, no names, more than 1000, or an invalid vendor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than `server.limits.max_body_bytes`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn lookup_servers(
    req: HttpRequest,
    body: web::Json<LookupRequest>,
    lookup: web::Data<LookupService>,
    rid: RequestId,
) -> HttpResponse {
    let body = body.into_inner();
    let invalid = |title: &str, detail: String| {
        super::routes::bad_request(types::INVALID_REQUEST, title, detail, req.path(), &rid)
    };
    if body.names.is_empty() || body.names.len() > MAX_PAGE {
        return invalid(
            "Invalid number of names",
            format!(
                "1 to {MAX_PAGE} names per request, got {}",
                body.names.len()
            ),
        );
    }
    let vendor = match body.vendor.as_deref().map(Vendor::parse).transpose() {
        Ok(v) => v,
        Err(e) => return invalid("Invalid vendor", e.to_string()),
    };
    let admin = is_admin(&req);
    let caller = super::routes::caller_key(&req);
    let instance = req.path().to_owned();
    // One lookup per distinct spelling (systems with case-sensitive names tell them apart;
    // the lookup layer coalesces the others).
    let mut distinct: Vec<&str> = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for n in &body.names {
        if !seen.contains_key(n.as_str()) {
            seen.insert(n, distinct.len());
            distinct.push(n);
        }
    }
    let concurrency = lookup.bulk_concurrency();
    let answers: Vec<LookupResult> = futures::stream::iter(distinct.iter().map(|&n| {
        let (lookup, caller, instance, rid) = (&lookup, &caller, &instance, &rid);
        async move {
            let problem = |p: Problem| LookupResult {
                name: n.to_owned(),
                status: p.status,
                cache: None,
                record: None,
                problem: Some(p.at(instance, &rid.0)),
            };
            let name = match ServerName::parse(n) {
                Ok(name) => name,
                Err(e) => {
                    return problem(Problem::new(
                        StatusCode::BAD_REQUEST,
                        types::INVALID_NAME,
                        "Invalid server name",
                        e.to_string(),
                    ))
                }
            };
            match lookup.get(&name, vendor, false, caller).await {
                Ok(answer) => match raw_record(&answer.record) {
                    Some(record) => LookupResult {
                        name: n.to_owned(),
                        status: 200,
                        cache: Some(answer.cache.as_str()),
                        record: Some(record),
                        problem: None,
                    },
                    None => problem(Problem::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        types::INTERNAL,
                        "Internal error",
                        "the record could not be embedded",
                    )),
                },
                Err(e) => problem(Problem::from_lookup(&e, admin)),
            }
        }
    }))
    .buffered(concurrency)
    .collect()
    .await;
    let results: Vec<LookupResult> = body
        .names
        .iter()
        .filter_map(|n| {
            let a = answers.get(*seen.get(n.as_str())?)?;
            Some(LookupResult {
                name: n.clone(),
                ..a.clone()
            })
        })
        .collect();
    let found = results.iter().filter(|r| r.status == 200).count();
    let not_found = results.iter().filter(|r| r.status == 404).count();
    HttpResponse::Ok().json(LookupResponse {
        failed: results.len() - found - not_found,
        results,
        found,
        not_found,
    })
}

/// The fleet index, system by system.
#[derive(Serialize, ToSchema)]
pub struct FleetResponse {
    /// `fleet.enabled`: whether systems are swept.
    pub enabled: bool,
    pub sweep_interval_seconds: u64,
    pub max_age_seconds: u64,
    /// Servers indexed, over all systems.
    pub servers: usize,
    /// Entries of `GET /fleet/conflicts`.
    pub conflicts: usize,
    pub systems: Vec<FleetSystem>,
}

fn fleet_response(lookup: &LookupService, admin: bool) -> FleetResponse {
    let fleet = lookup.fleet();
    let config = fleet.config();
    FleetResponse {
        enabled: config.enabled,
        sweep_interval_seconds: config.sweep_interval.as_secs(),
        max_age_seconds: config.max_age.as_secs(),
        servers: fleet.indexed(),
        conflicts: fleet.conflicts().len(),
        systems: fleet.systems(admin),
    }
}

/// Each system's fleet index: servers indexed, when it was swept, what the last sweep cost
/// (calls, time) and why it failed if it did, its age and whether it is stale, and the
/// system's breaker state.
#[utoipa::path(
    get,
    path = "/fleet",
    tag = "fleet",
    responses(
        (status = 200, description = "The index of every system", body = FleetResponse),
        (status = 401, description = "No or unknown bearer token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn fleet_status(req: HttpRequest, lookup: web::Data<LookupService>) -> HttpResponse {
    HttpResponse::Ok().json(fleet_response(&lookup, is_admin(&req)))
}

#[derive(Serialize, ToSchema)]
pub struct ConflictsResponse {
    pub conflicts: Vec<Conflict>,
}

/// MACs and BMC addresses claimed by two or more indexed servers (Ironic refuses a host whose
/// MAC is already registered): resolve them before enrolling those servers.
#[utoipa::path(
    get,
    path = "/fleet/conflicts",
    tag = "fleet",
    responses(
        (status = 200, description = "Every conflict, by kind then value", body = ConflictsResponse),
        (status = 401, description = "No or unknown bearer token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn fleet_conflicts(lookup: web::Data<LookupService>) -> HttpResponse {
    HttpResponse::Ok().json(ConflictsResponse {
        conflicts: lookup.fleet().conflicts().as_ref().clone(),
    })
}

#[derive(Debug, Deserialize)]
struct SweepQuery {
    system: Option<String>,
}

/// Sweeps a system (or every system) now and answers when it is done, with `GET /fleet`'s
/// body. Waits for a sweep of the same system already under way, then sweeps again. Needs a
/// token with the `admin` scope.
#[utoipa::path(
    post,
    path = "/fleet/sweep",
    tag = "fleet",
    params(("system" = Option<String>, Query, description = "Only this configured system")),
    responses(
        (status = 200, description = "Swept (see each system's `last_sweep` for the outcome)", body = FleetResponse),
        (status = 400, description = "Invalid query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks the `admin` scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No configured system of that name", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The fleet index is disabled (`fleet.enabled = false`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sweep_now(
    req: HttpRequest,
    lookup: web::Data<LookupService>,
    rid: RequestId,
) -> HttpResponse {
    if let Some(refused) = super::auth::refuse_unless_admin(&req, &rid.0) {
        return refused;
    }
    let query = match web::Query::<SweepQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(e) => return bad(&req, &rid, "Invalid query", e.to_string()),
    };
    let fleet = lookup.fleet();
    if !fleet.config().enabled {
        return Problem::new(
            StatusCode::CONFLICT,
            types::FLEET_DISABLED,
            "Fleet index disabled",
            "fleet.enabled = false: systems are not swept",
        )
        .at(req.path(), &rid.0)
        .response();
    }
    if !fleet.sweep_now(query.system.as_deref()).await {
        return Problem::new(
            StatusCode::NOT_FOUND,
            types::NO_SUCH_SYSTEM,
            "No such system",
            format!("no configured system is named {:?}", query.system),
        )
        .at(req.path(), &rid.0)
        .response();
    }
    HttpResponse::Ok().json(fleet_response(&lookup, is_admin(&req)))
}

/// A stored record's JSON, embedded as it is (the gateway rendered it itself).
fn raw_record(stored: &crate::lookup::Stored) -> Option<Box<RawValue>> {
    serde_json::from_slice(&stored.json()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_any_string_of_their_alphabet_is_a_position() {
        let key: SortKey = (
            "hpe-synergy-001".into(),
            "oneview-dc1".into(),
            "/rest/server-profiles/a b+c".into(),
        );
        assert_eq!(decode_cursor(&encode_cursor(&key)), Some(key));
        for made_by_hand in ["", "a", "ab", "abc", "not-a-cursor", "____"] {
            assert!(decode_cursor(made_by_hand).is_some(), "{made_by_hand:?}");
        }
        for refused in ["a/b", "a+b", "a=b", "é"] {
            assert_eq!(decode_cursor(refused), None, "{refused:?}");
        }
    }
}
