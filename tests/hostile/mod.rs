//! A hostile fake appliance: real HTTP/1.1 on 127.0.0.1, written by hand on a TCP socket so it
//! can misbehave in ways no HTTP framework allows (a body that never ends, one byte a second,
//! a header block of megabytes). Logins succeed the way each vendor answers them; the lookup
//! query then meets the chosen [`Attack`]. It counts requests per endpoint and how many
//! response bytes the gateway accepted before it closed the connection.

#![allow(dead_code)] // each test uses a different part

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inventory_gateway::domain::SystemKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const GIB: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// A valid answer padded to this many bytes, announced in `Content-Length`.
    Huge(u64),
    /// The same, chunked, without a length.
    HugeChunked(u64),
    /// Chunks forever.
    Endless,
    /// A few bytes of a valid answer, then one byte every `interval`, forever.
    Drip(Duration),
    /// Arrays (JSON) or elements (XML) nested this deep.
    Deep(usize),
    /// Every page links to the next and the last back to the first (OneView), or every page
    /// is full and the count never reached (OME).
    PageLoop,
    /// One page with this many items although a handful were asked.
    Oversized(usize),
    /// A response header block of this many headers of 1 KiB.
    HeaderFlood(usize),
}

#[derive(Default)]
pub struct Seen {
    pub requests: Mutex<BTreeMap<String, u64>>,
    /// Body bytes of attack responses the gateway took before closing the connection.
    pub attack_bytes: AtomicU64,
    /// Attack responses whose write failed because the gateway closed the connection.
    pub closed_early: AtomicU64,
    /// Attack responses written completely.
    pub completed: AtomicU64,
}

impl Seen {
    pub fn count(&self, key: &str) -> u64 {
        self.requests
            .lock()
            .map(|r| r.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

pub struct Hostile {
    pub url: String,
    pub seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The endpoint key the lookup query is counted under.
pub fn query_key(kind: SystemKind) -> &'static str {
    match kind {
        SystemKind::Oneview => "GET /rest/server-profiles",
        SystemKind::Ome => "GET /api/ProfileService/Profiles",
        SystemKind::Ucsm | SystemKind::UcsCentral => "configResolveClass",
        SystemKind::Intersight => "GET /api/v1/compute/PhysicalSummaries",
        SystemKind::Redfish => "GET /redfish/v1/Systems",
    }
}

pub async fn start(kind: SystemKind, attack: Attack) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let s = s.clone();
            // Connections die with the runtime when the test ends.
            tokio::spawn(async move {
                let _ = serve(conn, kind, attack, s).await;
            });
        }
    });
    Hostile { url, seen, task }
}

struct Request {
    method: String,
    path: String,
    body: String,
}

async fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(None);
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let path = first.next().unwrap_or("").to_owned();
    let len: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Request {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    }))
}

async fn serve(
    mut conn: TcpStream,
    kind: SystemKind,
    attack: Attack,
    seen: Arc<Seen>,
) -> std::io::Result<()> {
    while let Some(req) = read_request(&mut conn).await? {
        let key = endpoint(kind, &req);
        if let Ok(mut r) = seen.requests.lock() {
            *r.entry(key.clone()).or_default() += 1;
        }
        if let Some((headers, body)) = login_answer(kind, &key) {
            respond(&mut conn, 200, &headers, body.as_bytes()).await?;
            continue;
        }
        if key != query_key(kind) {
            respond(&mut conn, 404, &[], b"{}").await?;
            continue;
        }
        match attack_answer(&mut conn, kind, attack, &req, &seen).await {
            Ok(()) => {
                seen.completed.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                seen.closed_early.fetch_add(1, Ordering::SeqCst);
                return Err(e);
            }
        }
    }
    Ok(())
}

fn endpoint(kind: SystemKind, req: &Request) -> String {
    match kind {
        SystemKind::Ucsm | SystemKind::UcsCentral => {
            let name = req
                .body
                .trim_start()
                .trim_start_matches('<')
                .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
                .next()
                .unwrap_or("")
                .to_owned();
            name
        }
        _ => {
            let path = req.path.split('?').next().unwrap_or("");
            format!("{} {path}", req.method)
        }
    }
}

fn login_answer(kind: SystemKind, key: &str) -> Option<(Vec<String>, String)> {
    match (kind, key) {
        (SystemKind::Oneview, "POST /rest/login-sessions") => {
            Some((vec![], r#"{"sessionID":"hostile-session"}"#.into()))
        }
        // A BMC: its service root names its sessions, and a login succeeds.
        (SystemKind::Redfish, "GET /redfish/v1/") => Some((
            vec![],
            r#"{"Id":"RootService","Systems":{"@odata.id":"/redfish/v1/Systems"},"Links":{"Sessions":{"@odata.id":"/redfish/v1/SessionService/Sessions"}}}"#.into(),
        )),
        (SystemKind::Redfish, "POST /redfish/v1/SessionService/Sessions") => Some((
            vec![
                "X-Auth-Token: hostile-token".into(),
                "Location: /redfish/v1/SessionService/Sessions/1".into(),
            ],
            r#"{"Id":"1","UserName":"admin"}"#.into(),
        )),
        (SystemKind::Ome, "POST /api/SessionService/Sessions") => Some((
            vec!["X-Auth-Token: hostile-token".into()],
            r#"{"Id":"1","UserName":"admin"}"#.into(),
        )),
        (SystemKind::Ucsm | SystemKind::UcsCentral, "aaaLogin") => Some((
            vec![],
            concat!(
                r#"<aaaLogin cookie="" response="yes" outCookie="1/hostile" outRefreshPeriod="600" "#,
                r#"outPriv="admin" outVersion="4.2(3d)"> </aaaLogin>"#
            )
            .into(),
        )),
        // The profile query that follows an empty server answer finds nothing.
        (SystemKind::Intersight, "GET /api/v1/server/Profiles") => Some((
            vec![],
            r#"{"ObjectType":"server.Profile.List","Results":[]}"#.into(),
        )),
        // The device-name query that follows an empty profile answer finds nothing.
        (SystemKind::Ome, "GET /api/DeviceService/Devices") => {
            Some((vec![], r#"{"@odata.count":0,"value":[]}"#.into()))
        }
        (SystemKind::Ucsm | SystemKind::UcsCentral, "aaaLogout") => Some((
            vec![],
            r#"<aaaLogout cookie="" response="yes" outStatus="success"> </aaaLogout>"#.into(),
        )),
        _ => None,
    }
}

async fn respond(
    conn: &mut TcpStream,
    status: u16,
    headers: &[String],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    conn.flush().await
}

/// A valid, empty answer to the lookup query, split where padding can go: `open + pad + close`.
fn empty_answer(kind: SystemKind) -> (&'static str, &'static str, u8) {
    match kind {
        SystemKind::Oneview => (r#"{"members":[],"nextPageUri":null,"pad":""#, r#""}"#, b'x'),
        SystemKind::Ome => (r#"{"@odata.count":0,"value":[],"pad":""#, r#""}"#, b'x'),
        SystemKind::Redfish => (r#"{"Members":[],"pad":""#, r#""}"#, b'x'),
        SystemKind::Intersight => (
            r#"{"ObjectType":"compute.PhysicalSummary.List","Count":0,"Results":[],"pad":""#,
            r#""}"#,
            b'x',
        ),
        // Whitespace between elements is skipped by the parser.
        SystemKind::Ucsm | SystemKind::UcsCentral => (
            r#"<configResolveClass cookie="" response="yes" classId="lsServer"><outConfigs>"#,
            r#"</outConfigs></configResolveClass>"#,
            b' ',
        ),
    }
}

fn item(kind: SystemKind, i: usize) -> String {
    match kind {
        SystemKind::Oneview => format!(
            r#"{{"name":"p-{i}","uri":"/rest/server-profiles/{i}","serverHardwareUri":null}}"#
        ),
        SystemKind::Ome => format!(r#"{{"Id":{i},"ProfileName":"p-{i}","TargetId":0}}"#),
        SystemKind::Intersight => format!(r#"{{"Moid":"m{i}","Name":"p-{i}"}}"#),
        SystemKind::Redfish => format!(r#"{{"@odata.id":"/redfish/v1/Systems/{i}"}}"#),
        SystemKind::Ucsm | SystemKind::UcsCentral => {
            format!(r#"<lsServer dn="org-root/ls-p-{i}" name="p-{i}" type="instance" pnDn="" />"#)
        }
    }
}

async fn attack_answer(
    conn: &mut TcpStream,
    kind: SystemKind,
    attack: Attack,
    req: &Request,
    seen: &Seen,
) -> std::io::Result<()> {
    let (open, close, pad) = empty_answer(kind);
    let content_type = match kind {
        SystemKind::Ucsm | SystemKind::UcsCentral => "text/xml",
        _ => "application/json",
    };
    match attack {
        Attack::Huge(total) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {total}\r\n\r\n"
            );
            conn.write_all(head.as_bytes()).await?;
            let padding = total - (open.len() + close.len()) as u64;
            write_counted(conn, open.as_bytes(), seen).await?;
            write_padding(conn, pad, padding, seen).await?;
            write_counted(conn, close.as_bytes(), seen).await
        }
        Attack::HugeChunked(total) => {
            chunked_head(conn, content_type).await?;
            let padding = total - (open.len() + close.len()) as u64;
            write_chunk(conn, open.as_bytes(), seen).await?;
            let block = vec![pad; 64 * 1024];
            let mut left = padding;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                write_chunk(conn, &block[..n], seen).await?;
                left -= n as u64;
            }
            write_chunk(conn, close.as_bytes(), seen).await?;
            conn.write_all(b"0\r\n\r\n").await
        }
        Attack::Endless => {
            chunked_head(conn, content_type).await?;
            write_chunk(conn, open.as_bytes(), seen).await?;
            let block = vec![pad; 64 * 1024];
            loop {
                write_chunk(conn, &block, seen).await?;
            }
        }
        Attack::Drip(interval) => {
            chunked_head(conn, content_type).await?;
            write_chunk(conn, open.as_bytes(), seen).await?;
            loop {
                tokio::time::sleep(interval).await;
                write_chunk(conn, &[pad], seen).await?;
            }
        }
        Attack::Deep(depth) => {
            let body = match kind {
                SystemKind::Ucsm | SystemKind::UcsCentral => format!(
                    "<configResolveClass response=\"yes\">{}{}</configResolveClass>",
                    "<outConfigs>".repeat(depth),
                    "</outConfigs>".repeat(depth)
                ),
                _ => format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).await?;
            write_counted(conn, body.as_bytes(), seen).await
        }
        Attack::PageLoop => {
            let body = match kind {
                SystemKind::Oneview => {
                    let start: u64 = query_param(&req.path, "start").unwrap_or(0);
                    let next = if start >= 2 { 0 } else { start + 1 };
                    format!(
                        r#"{{"members":[],"nextPageUri":"/rest/server-profiles?start={next}&count=8&filter=x"}}"#
                    )
                }
                SystemKind::Ome => {
                    let top: usize = query_param(&req.path, "$top")
                        .or_else(|| query_param(&req.path, "%24top"))
                        .unwrap_or(8) as usize;
                    let items: Vec<String> = (0..top).map(|i| item(kind, i)).collect();
                    format!(r#"{{"value":[{}]}}"#, items.join(","))
                }
                // Every page full, no Count: only max_pages ends it.
                SystemKind::Intersight => {
                    let top: usize = query_param(&req.path, "$top").unwrap_or(8) as usize;
                    let items: Vec<String> = (0..top).map(|i| item(kind, i)).collect();
                    format!(r#"{{"Results":[{}]}}"#, items.join(","))
                }
                SystemKind::Ucsm | SystemKind::UcsCentral | SystemKind::Redfish => {
                    unreachable!("UCSM and a BMC's Systems do not page")
                }
            };
            respond_counted(conn, content_type, body.as_bytes(), seen).await
        }
        Attack::Oversized(n) => {
            let items: Vec<String> = (0..n).map(|i| item(kind, i)).collect();
            let body = match kind {
                SystemKind::Oneview => format!(
                    r#"{{"start":0,"count":{n},"total":{n},"nextPageUri":null,"members":[{}]}}"#,
                    items.join(",")
                ),
                SystemKind::Ome => {
                    format!(r#"{{"@odata.count":{n},"value":[{}]}}"#, items.join(","))
                }
                SystemKind::Intersight => {
                    format!(r#"{{"Count":{n},"Results":[{}]}}"#, items.join(","))
                }
                SystemKind::Redfish => format!(r#"{{"Members":[{}]}}"#, items.join(",")),
                SystemKind::Ucsm | SystemKind::UcsCentral => {
                    format!("{open}{}{close}", items.join(""))
                }
            };
            respond_counted(conn, content_type, body.as_bytes(), seen).await
        }
        Attack::HeaderFlood(n) => {
            conn.write_all(b"HTTP/1.1 200 OK\r\n").await?;
            let value = "v".repeat(1024);
            for i in 0..n {
                let line = format!("X-Flood-{i}: {value}\r\n");
                write_counted(conn, line.as_bytes(), seen).await?;
            }
            let rest = format!(
                "Content-Length: {}\r\n\r\n{open}{close}",
                open.len() + close.len()
            );
            conn.write_all(rest.as_bytes()).await
        }
    }
}

fn query_param(path: &str, name: &str) -> Option<u64> {
    let query = path.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

async fn respond_counted(
    conn: &mut TcpStream,
    content_type: &str,
    body: &[u8],
    seen: &Seen,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    write_counted(conn, body, seen).await
}

async fn chunked_head(conn: &mut TcpStream, content_type: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await
}

async fn write_chunk(conn: &mut TcpStream, data: &[u8], seen: &Seen) -> std::io::Result<()> {
    conn.write_all(format!("{:x}\r\n", data.len()).as_bytes())
        .await?;
    write_counted(conn, data, seen).await?;
    conn.write_all(b"\r\n").await
}

async fn write_padding(
    conn: &mut TcpStream,
    pad: u8,
    mut left: u64,
    seen: &Seen,
) -> std::io::Result<()> {
    let block = vec![pad; 64 * 1024];
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        write_counted(conn, &block[..n], seen).await?;
        left -= n as u64;
    }
    Ok(())
}

async fn write_counted(conn: &mut TcpStream, data: &[u8], seen: &Seen) -> std::io::Result<()> {
    conn.write_all(data).await?;
    seen.attack_bytes
        .fetch_add(data.len() as u64, Ordering::SeqCst);
    Ok(())
}
