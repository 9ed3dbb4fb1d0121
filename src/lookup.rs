//! The lookup service: which systems to ask, asking them concurrently, and turning their
//! answers into one record or one well-defined failure.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tracing::Instrument;

use crate::domain::{ServerName, ServerRecord, Vendor};
use crate::vendors::{Backend, BackendError};

/// A server found in some system, as listed in an ambiguity error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    pub system_name: String,
    pub system: crate::domain::SystemKind,
    pub system_id: String,
    pub name: String,
}

impl From<&ServerRecord> for Candidate {
    fn from(r: &ServerRecord) -> Self {
        Self {
            system_name: r.system_name.clone(),
            system: r.system,
            system_id: r.system_id.clone(),
            name: r.name.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no management system is configured for vendor {0}")]
    NoSystemForVendor(Vendor),
    #[error("server not found in {searched:?}")]
    NotFound { searched: Vec<String> },
    #[error("the name matches {} servers", candidates.len())]
    Ambiguous {
        searched: Vec<String>,
        candidates: Vec<Candidate>,
    },
    #[error("{0}")]
    Unassigned(BackendError),
    /// Some systems could not answer and none of the others found the server, so "not found"
    /// cannot be claimed.
    #[error("{} system(s) failed", failures.len())]
    Upstream {
        searched: Vec<String>,
        failures: Vec<BackendError>,
    },
}

impl LookupError {
    pub fn searched(&self) -> &[String] {
        match self {
            Self::NotFound { searched }
            | Self::Ambiguous { searched, .. }
            | Self::Upstream { searched, .. } => searched,
            Self::NoSystemForVendor(_) | Self::Unassigned(_) => &[],
        }
    }
}

pub struct LookupService {
    backends: Vec<Arc<dyn Backend>>,
    /// Bound on one system's whole answer (login, pages, follow-up calls).
    deadline: Duration,
}

impl LookupService {
    pub fn new(backends: Vec<Arc<dyn Backend>>, deadline: Duration) -> Self {
        Self { backends, deadline }
    }

    pub fn backends(&self) -> &[Arc<dyn Backend>] {
        &self.backends
    }

    /// Asks the systems that can own `name` (all, or those of `vendor`) concurrently.
    pub async fn lookup(
        &self,
        name: &ServerName,
        vendor: Option<Vendor>,
    ) -> Result<ServerRecord, LookupError> {
        let targets: Vec<&Arc<dyn Backend>> = self
            .backends
            .iter()
            .filter(|b| vendor.is_none_or(|v| b.kind().vendor() == v))
            .collect();
        if targets.is_empty() {
            // Only reachable with a vendor hint: config validation guarantees one system.
            return Err(LookupError::NoSystemForVendor(
                vendor.unwrap_or(Vendor::Hpe),
            ));
        }
        let searched: Vec<String> = targets.iter().map(|b| b.name().to_owned()).collect();
        let answers = join_all(targets.iter().map(|b| self.ask(b.as_ref(), name))).await;
        combine(searched, answers)
    }

    async fn ask(
        &self,
        backend: &dyn Backend,
        name: &ServerName,
    ) -> Result<Vec<ServerRecord>, BackendError> {
        let span =
            tracing::info_span!("vendor_lookup", system = backend.name(), kind = %backend.kind());
        let find = backend.find(name).instrument(span);
        match tokio::time::timeout(self.deadline, find).await {
            Ok(answer) => answer,
            Err(_) => Err(BackendError::Timeout {
                system: backend.name().to_owned(),
                timeout: self.deadline,
            }),
        }
    }

    /// Ends every vendor session (on shutdown).
    pub async fn logout_all(&self) {
        join_all(self.backends.iter().map(|b| b.logout())).await;
    }
}

/// One record when exactly one server matched; otherwise the reason why not.
fn combine(
    searched: Vec<String>,
    answers: Vec<Result<Vec<ServerRecord>, BackendError>>,
) -> Result<ServerRecord, LookupError> {
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for answer in answers {
        match answer {
            Ok(records) => found.extend(records),
            Err(e) => failures.push(e),
        }
    }
    match found.len() {
        // A system that failed might also hold the name, but one good answer is worth more to a
        // caller than a 502; the failure is logged for the operator.
        1 => {
            for f in &failures {
                tracing::warn!(system = f.system(), error = %f, "system failed during fan-out; answering from the system that found the server");
            }
            found.pop().ok_or(LookupError::NotFound { searched })
        }
        0 if failures.is_empty() => Err(LookupError::NotFound { searched }),
        0 => {
            if failures.len() == 1 && matches!(failures[0], BackendError::Unassigned { .. }) {
                let only = failures.remove(0);
                return Err(LookupError::Unassigned(only));
            }
            Err(LookupError::Upstream { searched, failures })
        }
        _ => Err(LookupError::Ambiguous {
            searched,
            candidates: found.iter().map(Candidate::from).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SystemKind;

    fn record(system: &str) -> ServerRecord {
        ServerRecord {
            name: "web-01".into(),
            vendor: Vendor::Hpe,
            system: SystemKind::Oneview,
            system_name: system.into(),
            system_id: format!("/rest/server-profiles/{system}"),
            bmc: None,
            nics: vec![],
            boot_mac: None,
            serial_number: None,
            model: None,
            power_state: None,
            fetched_at: chrono::Utc::now(),
            stale: false,
        }
    }

    fn timeout(system: &str) -> BackendError {
        BackendError::Timeout {
            system: system.into(),
            timeout: Duration::from_secs(1),
        }
    }

    fn searched() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn one_match_wins_even_if_another_system_failed() {
        let r = combine(searched(), vec![Ok(vec![record("a")]), Err(timeout("b"))]).unwrap();
        assert_eq!(r.system_name, "a");
    }

    #[test]
    fn nothing_anywhere_is_not_found() {
        let e = combine(searched(), vec![Ok(vec![]), Ok(vec![])]).unwrap_err();
        assert!(matches!(e, LookupError::NotFound { .. }));
        assert_eq!(e.searched(), &["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn a_failure_prevents_claiming_not_found() {
        let e = combine(searched(), vec![Ok(vec![]), Err(timeout("b"))]).unwrap_err();
        assert!(matches!(e, LookupError::Upstream { ref failures, .. } if failures.len() == 1));
    }

    #[test]
    fn two_matches_are_ambiguous() {
        let e = combine(
            searched(),
            vec![Ok(vec![record("a")]), Ok(vec![record("b")])],
        )
        .unwrap_err();
        let LookupError::Ambiguous { candidates, .. } = e else {
            panic!("expected ambiguity, got {e:?}")
        };
        assert_eq!(candidates.len(), 2);
    }

    #[test]
    fn unassigned_profile_is_reported_as_such() {
        let unassigned = BackendError::Unassigned {
            system: "a".into(),
            profile: "web-01".into(),
        };
        let e = combine(searched(), vec![Err(unassigned), Ok(vec![])]).unwrap_err();
        assert!(matches!(e, LookupError::Unassigned(_)));
    }
}
