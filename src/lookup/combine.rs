//! Turning the systems' answers for one name into one record or one well-defined failure.
//!
//! Ambiguity is a property of the name, not of who happened to answer: a name is only answered
//! with one system's server when every system that might hold it was heard from, and otherwise
//! the answer lists the systems it could not hear from (`unverified`). A name once seen in two
//! systems stays ambiguous while either of them cannot be asked.

use crate::domain::ServerRecord;
use crate::vendors::BackendError;

use super::{Candidate, LookupError};

/// What one system said about the name. A system known (from a fresh negative entry) not to
/// hold the name is an `Ok(vec![])` without having been asked.
pub type Heard = (String, Result<Vec<ServerRecord>, BackendError>);

/// One record when exactly one server matched and no system that could not be asked is known to
/// hold the name too; otherwise the reason why not. `known` = the candidates remembered from an
/// earlier ambiguity for this name.
pub fn combine(
    searched: Vec<String>,
    answers: Vec<Heard>,
    known: &[Candidate],
) -> Result<ServerRecord, LookupError> {
    let mut found = Vec::new();
    let mut failures = Vec::new();
    let mut unheard = Vec::new();
    for (system, answer) in answers {
        match answer {
            Ok(records) => found.extend(records),
            // The system answered: it has a profile of that name but no hardware.
            Err(e @ BackendError::Unassigned { .. }) => failures.push(e),
            Err(e) => {
                unheard.push(system);
                failures.push(e);
            }
        }
    }
    match found.len() {
        1 => {
            let mut record = found.remove(0);
            let still_held: Vec<Candidate> = known
                .iter()
                .filter(|c| c.system_name != record.system_name && unheard.contains(&c.system_name))
                .cloned()
                .collect();
            if !still_held.is_empty() {
                let mut candidates = vec![Candidate::from(&record)];
                candidates.extend(still_held);
                return Err(LookupError::Ambiguous {
                    searched,
                    candidates,
                });
            }
            for f in &failures {
                tracing::debug!(system = f.system(), error = %f, "system failed during fan-out; the answer lists it as unverified");
            }
            record.unverified = unheard;
            Ok(record)
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

/// What is remembered about the name's holders after this fan-out: every system that answered
/// with the name, plus the remembered ones that could not be asked. `None` = fewer than two, so
/// nothing worth remembering.
pub fn holders_after(answers: &[Heard], known: &[Candidate]) -> Option<Vec<Candidate>> {
    let mut holders: Vec<Candidate> = Vec::new();
    for (system, answer) in answers {
        match answer {
            Ok(records) => holders.extend(records.iter().map(Candidate::from)),
            Err(BackendError::Unassigned { .. }) => {}
            Err(_) => holders.extend(known.iter().filter(|c| &c.system_name == system).cloned()),
        }
    }
    // Known holders among systems not asked this time (excluded by a vendor hint) stay known.
    holders.extend(
        known
            .iter()
            .filter(|c| !answers.iter().any(|(s, _)| s == &c.system_name))
            .cloned(),
    );
    (holders.len() >= 2).then_some(holders)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{SystemKind, Vendor};

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
            unverified: vec![],
            nics_unavailable: None,
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

    fn heard(system: &str, answer: Result<Vec<ServerRecord>, BackendError>) -> Heard {
        (system.into(), answer)
    }

    #[test]
    fn one_match_with_a_failed_system_is_answered_as_unverified() {
        let answers = vec![
            heard("a", Ok(vec![record("a")])),
            heard("b", Err(timeout("b"))),
        ];
        let r = combine(searched(), answers, &[]).expect("one match");
        assert_eq!(r.system_name, "a");
        assert_eq!(r.unverified, ["b"]);
    }

    #[test]
    fn one_match_where_every_system_answered_is_verified() {
        let answers = vec![heard("a", Ok(vec![record("a")])), heard("b", Ok(vec![]))];
        let r = combine(searched(), answers, &[]).expect("one match");
        assert!(r.unverified.is_empty());
    }

    #[test]
    fn a_known_second_holder_that_cannot_be_asked_keeps_the_name_ambiguous() {
        let known = [Candidate::from(&record("a")), Candidate::from(&record("b"))];
        let answers = vec![
            heard("a", Ok(vec![record("a")])),
            heard("b", Err(timeout("b"))),
        ];
        let e = combine(searched(), answers, &known).expect_err("still ambiguous");
        let LookupError::Ambiguous { candidates, .. } = e else {
            panic!("expected ambiguity, got {e:?}")
        };
        let systems: Vec<_> = candidates.iter().map(|c| c.system_name.as_str()).collect();
        assert_eq!(systems, ["a", "b"]);
    }

    #[test]
    fn a_known_second_holder_that_now_says_no_resolves_the_ambiguity() {
        let known = [Candidate::from(&record("a")), Candidate::from(&record("b"))];
        let answers = vec![heard("a", Ok(vec![record("a")])), heard("b", Ok(vec![]))];
        let r = combine(searched(), answers.clone(), &known).expect("resolved");
        assert!(r.unverified.is_empty());
        assert_eq!(holders_after(&answers, &known), None);
    }

    #[test]
    fn holders_are_remembered_across_a_failure() {
        let known = [Candidate::from(&record("a")), Candidate::from(&record("b"))];
        let answers = vec![
            heard("a", Ok(vec![record("a")])),
            heard("b", Err(timeout("b"))),
        ];
        let holders = holders_after(&answers, &known).expect("still two");
        assert_eq!(holders.len(), 2);
        // Two found in one fan-out are remembered from nothing.
        let both = vec![
            heard("a", Ok(vec![record("a")])),
            heard("b", Ok(vec![record("b")])),
        ];
        assert_eq!(holders_after(&both, &[]).map(|h| h.len()), Some(2));
    }

    #[test]
    fn nothing_anywhere_is_not_found() {
        let e = combine(
            searched(),
            vec![heard("a", Ok(vec![])), heard("b", Ok(vec![]))],
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, LookupError::NotFound { .. }));
        assert_eq!(e.searched(), &["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn a_failure_prevents_claiming_not_found() {
        let e = combine(
            searched(),
            vec![heard("a", Ok(vec![])), heard("b", Err(timeout("b")))],
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, LookupError::Upstream { ref failures, .. } if failures.len() == 1));
    }

    #[test]
    fn two_matches_are_ambiguous() {
        let e = combine(
            searched(),
            vec![
                heard("a", Ok(vec![record("a")])),
                heard("b", Ok(vec![record("b")])),
            ],
            &[],
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
        let e = combine(
            searched(),
            vec![heard("a", Err(unassigned)), heard("b", Ok(vec![]))],
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, LookupError::Unassigned(_)));
    }
}
