//! The load generator: a small HTTP/1.1 client over hyper's connection API. One keep-alive
//! connection per concurrent worker, requests back to back on it (closed loop), every latency
//! recorded and sorted for exact percentiles. Meant to run on its own current-thread runtime,
//! so that it costs exactly one OS thread.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use futures::future::join_all;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, HOST};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::BenchError;

/// Where requests go, and the headers every request carries.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    host: HeaderValue,
    auth: Option<HeaderValue>,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, bearer: Option<&str>) -> Result<Self, BenchError> {
        let host = HeaderValue::from_str(&addr.to_string())
            .map_err(|e| BenchError::Setup(format!("host header: {e}")))?;
        let auth = bearer
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()
            .map_err(|e| BenchError::Setup(format!("authorization header: {e}")))?;
        Ok(Self { addr, host, auth })
    }

    /// The same headers (bearer token included) sent to another address.
    pub fn at(&self, addr: SocketAddr) -> Result<Self, BenchError> {
        let host = HeaderValue::from_str(&addr.to_string())
            .map_err(|e| BenchError::Setup(format!("host header: {e}")))?;
        Ok(Self {
            addr,
            host,
            auth: self.auth.clone(),
        })
    }

    /// The `Authorization` header value, for an external load generator.
    pub fn authorization(&self) -> Option<&str> {
        self.auth.as_ref().and_then(|v| v.to_str().ok())
    }

    /// The same endpoint without the bearer token.
    pub fn anonymous(&self) -> Self {
        Self {
            auth: None,
            ..self.clone()
        }
    }

    pub async fn connect(&self) -> Result<Conn, BenchError> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| BenchError::Http(format!("connect {}: {e}", self.addr)))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| BenchError::Http(format!("handshake {}: {e}", self.addr)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            endpoint: self.clone(),
        })
    }
}

/// One keep-alive connection.
pub struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    endpoint: Endpoint,
}

/// What the harness looks at in an answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The `X-Cache` header (`hit`, `miss`, `stale`), when present.
    pub x_cache: Option<String>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Conn {
    pub async fn get(&mut self, path: &str) -> Result<Reply, BenchError> {
        let err = |e: &dyn std::fmt::Display| BenchError::Http(format!("GET {path}: {e}"));
        self.sender.ready().await.map_err(|e| err(&e))?;
        let mut req = hyper::Request::get(path);
        req = req.header(HOST, self.endpoint.host.clone());
        if let Some(auth) = &self.endpoint.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let req = req.body(Empty::new()).map_err(|e| err(&e))?;
        let resp = self.sender.send_request(req).await.map_err(|e| err(&e))?;
        let (parts, body) = resp.into_parts();
        let status = parts.status.as_u16();
        let x_cache = parts
            .headers
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = body.collect().await.map_err(|e| err(&e))?.to_bytes();
        Ok(Reply {
            status,
            x_cache,
            headers: parts.headers,
            body,
        })
    }
}

/// One GET on a fresh connection.
pub async fn get_once(endpoint: &Endpoint, path: &str) -> Result<Reply, BenchError> {
    endpoint.connect().await?.get(path).await
}

/// A closed-loop run: `concurrency` connections, each sending the next request as soon as the
/// previous answer is read, for `warmup` (not recorded) then `duration` (recorded).
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    /// Latency of every request started inside the measured window, in nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// Measured time (sum over merged runs).
    pub measured: Duration,
    /// Answers that were not 200.
    pub non_ok: u64,
    /// Transport errors (the connection is re-opened after one).
    pub errors: u64,
    /// Answers with `X-Cache: hit`.
    pub cache_hits: u64,
    /// Body size of the last answer seen.
    pub body_bytes: usize,
    /// CPU time of the client's thread while measuring (None where Linux schedstat is absent).
    pub client_cpu: Option<Duration>,
}

impl LoadResult {
    pub fn requests(&self) -> usize {
        self.latencies_ns.len()
    }

    pub fn per_second(&self) -> f64 {
        let secs = self.measured.as_secs_f64();
        if secs > 0.0 {
            self.requests() as f64 / secs
        } else {
            0.0
        }
    }

    /// Exact percentile (nearest rank) of the recorded latencies; call after [`Self::finish`].
    pub fn percentile(&self, p: f64) -> Duration {
        Duration::from_nanos(percentile(&self.latencies_ns, p))
    }

    /// Sorts the latencies (percentiles need it).
    pub fn finish(mut self) -> Self {
        self.latencies_ns.sort_unstable();
        self
    }

    /// Folds another run of the same target into this one.
    pub fn merge(&mut self, other: LoadResult) {
        self.latencies_ns.extend(other.latencies_ns);
        self.measured += other.measured;
        self.non_ok += other.non_ok;
        self.errors += other.errors;
        self.cache_hits += other.cache_hits;
        self.body_bytes = other.body_bytes.max(self.body_bytes);
        self.client_cpu = match (self.client_cpu, other.client_cpu) {
            (Some(a), Some(b)) => Some(a + b),
            (None, b) => b,
            (a, None) => a,
        };
    }
}

/// Nearest-rank percentile of sorted values; 0 for none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `spec` against `endpoint`, cycling through `paths`.
pub async fn closed_loop(
    endpoint: &Endpoint,
    paths: &[String],
    spec: LoadSpec,
) -> Result<LoadResult, BenchError> {
    if paths.is_empty() || spec.concurrency == 0 {
        return Err(BenchError::Setup("nothing to send".into()));
    }
    let mut conns = Vec::with_capacity(spec.concurrency);
    for _ in 0..spec.concurrency {
        conns.push(endpoint.connect().await?);
    }
    let next = Cell::new(0usize);
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let cpu_at_start = Cell::new(None);
    let workers = conns.into_iter().map(|mut conn| {
        let next = &next;
        let cpu_at_start = &cpu_at_start;
        async move {
            let mut out = LoadResult::default();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                if t0 >= measure_from && cpu_at_start.get().is_none() {
                    cpu_at_start.set(Some(thread_cpu()));
                }
                let i = next.get();
                next.set(i.wrapping_add(1));
                let path = &paths[i % paths.len()];
                let answer = conn.get(path).await;
                let elapsed = t0.elapsed();
                let record = t0 >= measure_from;
                match answer {
                    Ok(reply) => {
                        if record {
                            out.latencies_ns.push(elapsed.as_nanos() as u64);
                            if reply.status != 200 {
                                out.non_ok += 1;
                            }
                            if reply.x_cache.as_deref() == Some("hit") {
                                out.cache_hits += 1;
                            }
                        }
                        out.body_bytes = reply.body.len();
                    }
                    Err(_) => {
                        out.errors += 1;
                        match endpoint.connect().await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            out
        }
    });
    let results = join_all(workers).await;
    let cpu_at_end = thread_cpu();
    let mut total = LoadResult {
        measured: spec.duration,
        client_cpu: match (cpu_at_start.get().flatten(), cpu_at_end) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        ..Default::default()
    };
    for r in results {
        total.latencies_ns.extend(r.latencies_ns);
        total.non_ok += r.non_ok;
        total.errors += r.errors;
        total.cache_hits += r.cache_hits;
        total.body_bytes = total.body_bytes.max(r.body_bytes);
    }
    Ok(total)
}

/// Opens `n` connections first, then sends one request on each at the same moment.
pub async fn burst(
    endpoint: &Endpoint,
    path: &str,
    n: usize,
) -> Result<Vec<Result<Reply, BenchError>>, BenchError> {
    let mut conns = Vec::with_capacity(n);
    // Connect in slices so that the listen backlog never overflows.
    for chunk in (0..n).collect::<Vec<_>>().chunks(128) {
        let opened = join_all(chunk.iter().map(|_| endpoint.connect())).await;
        for c in opened {
            conns.push(c?);
        }
    }
    Ok(join_all(conns.iter_mut().map(|c| c.get(path))).await)
}

/// Sends every path once, `concurrency` at a time; returns (200 answers, other outcomes).
pub async fn drain(
    endpoint: &Endpoint,
    paths: &[String],
    concurrency: usize,
) -> Result<(usize, usize), BenchError> {
    let next = Cell::new(0usize);
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.clamp(1, paths.len().max(1)) {
        conns.push(endpoint.connect().await?);
    }
    let workers = conns.into_iter().map(|mut conn| {
        let next = &next;
        async move {
            let (mut ok, mut failed) = (0usize, 0usize);
            loop {
                let i = next.get();
                let Some(path) = paths.get(i) else { break };
                next.set(i + 1);
                match conn.get(path).await {
                    Ok(r) if r.status == 200 => ok += 1,
                    Ok(_) => failed += 1,
                    Err(_) => {
                        failed += 1;
                        match endpoint.connect().await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            (ok, failed)
        }
    });
    let results = join_all(workers).await;
    Ok(results
        .into_iter()
        .fold((0, 0), |(a, b), (ok, failed)| (a + ok, b + failed)))
}

/// CPU time of the calling thread so far (Linux `schedstat`), if available.
pub fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
