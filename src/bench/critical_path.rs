//! How many dependent upstream round trips a lookup makes, read from the simulators' own
//! counters rather than assumed.
//!
//! Each simulator counts a call when the call *arrives*, before it sleeps the injected latency
//! L. While one lookup runs, the harness samples every simulator's call total about once a
//! millisecond and timestamps each increase. Calls that depend on an earlier answer arrive at
//! least L after it; calls issued together arrive within a millisecond or two of each other.
//! So the arrivals of one lookup, split wherever two consecutive ones are more than L/2 apart,
//! give its dependent rounds: OneView's profile query then its server hardware (2 calls, 2
//! rounds), UCSM's `configResolveClass` then `configResolveDns` (2, 2), OME's profile query then
//! the device and its NICs fetched together (3 calls, 2 rounds). The critical path of a system
//! is rounds × L; of a fan-out, the largest of the systems' critical paths, since they are
//! asked concurrently. (Sampling at ~1 ms needs L ≥ 5 ms to tell rounds apart.)

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::client::{Conn, Reply};
use super::stack::total_calls;
use super::BenchError;
use crate::domain::SystemKind;
use crate::sim::SimShared;

/// A simulator being watched, with the latency it currently injects.
#[derive(Clone)]
pub struct Watched {
    pub kind: SystemKind,
    /// The system's simulator and those it fronts (UCS Central's domains): one lookup's rounds
    /// run through all of them.
    pub sims: Vec<Arc<SimShared>>,
    pub latency: Duration,
}

impl Watched {
    fn calls(&self) -> u64 {
        self.sims.iter().map(|s| total_calls(s)).sum()
    }
}

/// What one system did during one lookup.
#[derive(Debug, Clone, Copy)]
pub struct SystemCalls {
    pub kind: SystemKind,
    pub calls: u64,
    pub rounds: u32,
    /// rounds × the system's injected latency.
    pub critical: Duration,
}

pub struct Probe {
    pub elapsed: Duration,
    pub reply: Reply,
    pub systems: Vec<SystemCalls>,
}

impl Probe {
    /// Largest critical path among the systems asked (they run concurrently).
    pub fn slowest(&self) -> Duration {
        self.systems
            .iter()
            .map(|s| s.critical)
            .max()
            .unwrap_or_default()
    }

    /// What the lookup would cost if the systems were asked one after the other.
    pub fn sum(&self) -> Duration {
        self.systems.iter().map(|s| s.critical).sum()
    }

    pub fn of(&self, kind: SystemKind) -> Option<&SystemCalls> {
        self.systems.iter().find(|s| s.kind == kind)
    }
}

/// Sends one GET while timestamping every simulator's call arrivals.
pub async fn probed_get(
    conn: &mut Conn,
    path: &str,
    watched: &[Watched],
) -> Result<Probe, BenchError> {
    let mut last: Vec<u64> = watched.iter().map(|w| w.calls()).collect();
    let mut arrivals: Vec<Vec<(Duration, u64)>> = vec![Vec::new(); watched.len()];
    let sample = |at: Duration, last: &mut Vec<u64>, arrivals: &mut Vec<Vec<(Duration, u64)>>| {
        for (i, w) in watched.iter().enumerate() {
            let now = w.calls();
            if now > last[i] {
                arrivals[i].push((at, now - last[i]));
                last[i] = now;
            }
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let started = Instant::now();
    let request = conn.get(path);
    tokio::pin!(request);
    let reply = loop {
        tokio::select! {
            biased;
            r = &mut request => break r?,
            _ = tick.tick() => sample(started.elapsed(), &mut last, &mut arrivals),
        }
    };
    let elapsed = started.elapsed();
    sample(elapsed, &mut last, &mut arrivals);
    let systems = watched
        .iter()
        .zip(&arrivals)
        .filter(|(_, a)| !a.is_empty())
        .map(|(w, a)| {
            let rounds = rounds(a, w.latency);
            SystemCalls {
                kind: w.kind,
                calls: a.iter().map(|(_, n)| n).sum(),
                rounds,
                critical: w.latency * rounds,
            }
        })
        .collect();
    Ok(Probe {
        elapsed,
        reply,
        systems,
    })
}

/// Groups timestamped arrivals into rounds: a new round wherever the gap exceeds L/2.
fn rounds(arrivals: &[(Duration, u64)], latency: Duration) -> u32 {
    let gap = (latency / 2).max(Duration::from_millis(2));
    let mut rounds = 0;
    let mut previous: Option<Duration> = None;
    for &(at, _) in arrivals {
        if previous.is_none_or(|p| at.saturating_sub(p) > gap) {
            rounds += 1;
        }
        previous = Some(at);
    }
    rounds
}

/// The most frequent value (ties: the larger), with the range seen.
pub fn mode(values: &[u32]) -> (u32, u32, u32) {
    let mut best = (0u32, 0usize);
    for &v in values {
        let n = values.iter().filter(|&&x| x == v).count();
        if n > best.1 || (n == best.1 && v > best.0) {
            best = (v, n);
        }
    }
    let min = values.iter().copied().min().unwrap_or(0);
    let max = values.iter().copied().max().unwrap_or(0);
    (best.0, min, max)
}

/// The dependent rounds each vendor's protocol needs at least (documentation and a check on
/// the measured value): (calls, rounds).
pub fn protocol_minimum(kind: SystemKind) -> (u64, u32) {
    match kind {
        SystemKind::Oneview => (2, 2),
        SystemKind::Ucsm => (2, 2),
        // Central's profile query, then the domain's own two.
        SystemKind::UcsCentral => (3, 3),
        SystemKind::Ome => (3, 2),
        // The server's summary, then its host Ethernet interfaces.
        SystemKind::Intersight => (2, 2),
        // The system (its path known from the sweep or an earlier lookup), then its interfaces.
        SystemKind::Redfish => (2, 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn arrivals_split_into_rounds_at_half_the_latency() {
        let l = ms(20);
        assert_eq!(rounds(&[(ms(1), 1)], l), 1);
        assert_eq!(rounds(&[(ms(1), 1), (ms(22), 1)], l), 2);
        // Two calls issued together, seen one sample apart.
        assert_eq!(rounds(&[(ms(1), 1), (ms(22), 1), (ms(23), 1)], l), 2);
        assert_eq!(rounds(&[(ms(1), 1), (ms(22), 2)], l), 2);
        assert_eq!(rounds(&[(ms(1), 1), (ms(22), 1), (ms(43), 1)], l), 3);
        assert_eq!(rounds(&[], l), 0);
    }

    #[test]
    fn mode_prefers_the_most_frequent_then_the_larger() {
        assert_eq!(mode(&[2, 2, 3]), (2, 2, 3));
        assert_eq!(mode(&[2, 3]), (3, 2, 3));
        assert_eq!(mode(&[]), (0, 0, 0));
    }
}
