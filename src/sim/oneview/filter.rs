//! The subset of OneView's `filter` grammar (REST API reference, "Common REST API
//! Parameters") that clients use to find one resource: `[NOT] "attr op 'value'"`, with optional
//! outer double quotes and an optional quoted attribute. `=`/`eq` compare case-insensitively,
//! `==`/`seq` case-sensitively, `ne`/`<>`/`!=` and `sne` are their negations, and
//! `matches`/`smatches` take SQL `%` / `_` wildcards (case-insensitive / sensitive). `regex` is
//! not simulated. A quote inside a value cannot be expressed (OneView documents no escape), so
//! an unbalanced quote is a syntax error.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    EqCase,
    Ne,
    NeCase,
    Matches,
    MatchesCase,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub attr: String,
    pub op: Op,
    /// `None` for the literal `null`.
    pub value: Option<String>,
    /// A leading `NOT`.
    pub negated: bool,
}

impl Cond {
    /// Equality on `name` can be answered from the name index instead of a scan.
    pub fn indexed_name(&self) -> Option<&str> {
        match (self.attr.as_str(), self.op, &self.value, self.negated) {
            ("name", Op::Eq | Op::EqCase, Some(v), false) => Some(v),
            _ => None,
        }
    }

    pub fn accepts(&self, actual: Option<&str>) -> bool {
        self.negated != self.holds(actual)
    }

    fn holds(&self, actual: Option<&str>) -> bool {
        let lower = |s: &str| s.to_lowercase().chars().collect::<Vec<_>>();
        let exact = |s: &str| s.chars().collect::<Vec<_>>();
        match (self.op, actual, self.value.as_deref()) {
            (Op::Eq, a, v) => eq_ci(a, v),
            (Op::Ne, a, v) => !eq_ci(a, v),
            (Op::EqCase, a, v) => a == v,
            (Op::NeCase, a, v) => a != v,
            (Op::Matches, Some(a), Some(p)) => like(&lower(a), &lower(p)),
            (Op::MatchesCase, Some(a), Some(p)) => like(&exact(a), &exact(p)),
            (Op::Matches | Op::MatchesCase, _, _) => false,
        }
    }
}

fn eq_ci(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.to_lowercase() == b.to_lowercase(),
        (None, None) => true,
        _ => false,
    }
}

/// SQL LIKE: `%` any run, `_` any one character.
fn like(text: &[char], pattern: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('%', rest)) => (0..=text.len()).any(|i| like(&text[i..], rest)),
        Some(('_', rest)) => !text.is_empty() && like(&text[1..], rest),
        Some((c, rest)) => text.first() == Some(c) && like(&text[1..], rest),
    }
}

pub fn parse(filter: &str) -> Result<Cond, String> {
    let s = filter.trim();
    let (negated, s) = match s.get(..4) {
        Some(head) if head.eq_ignore_ascii_case("not ") => (true, s[4..].trim_start()),
        _ => (false, s),
    };
    let s = match (s.strip_prefix('"'), s.ends_with('"')) {
        (Some(inner), true) if !inner.is_empty() => &inner[..inner.len() - 1],
        (None, false) => s,
        _ => return Err(format!("unbalanced double quote in filter {filter:?}")),
    };
    let (attr, rest) = attribute(s.trim_start())?;
    let (op, rest) = operator(rest.trim_start())?;
    let value = value(rest.trim())?;
    Ok(Cond {
        attr,
        op,
        value,
        negated,
    })
}

fn attribute(s: &str) -> Result<(String, &str), String> {
    if let Some(quoted) = s.strip_prefix('\'') {
        let end = quoted
            .find('\'')
            .ok_or_else(|| format!("unbalanced quote in attribute of {s:?}"))?;
        return Ok((quoted[..end].to_owned(), &quoted[end + 1..]));
    }
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.')))
        .unwrap_or(s.len());
    if end == 0 {
        return Err(format!("no attribute in filter {s:?}"));
    }
    Ok((s[..end].to_owned(), &s[end..]))
}

fn operator(s: &str) -> Result<(Op, &str), String> {
    for (sym, op) in [
        ("==", Op::EqCase),
        ("<>", Op::Ne),
        ("!=", Op::Ne),
        ("=", Op::Eq),
    ] {
        if let Some(rest) = s.strip_prefix(sym) {
            return Ok((op, rest));
        }
    }
    let word_end = s
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    let op = match s[..word_end].to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "seq" => Op::EqCase,
        "ne" => Op::Ne,
        "sne" => Op::NeCase,
        "matches" => Op::Matches,
        "smatches" => Op::MatchesCase,
        _ => return Err(format!("unknown operator in filter at {s:?}")),
    };
    let rest = &s[word_end..];
    if !rest.starts_with(char::is_whitespace) {
        return Err(format!("operator must be followed by a space at {s:?}"));
    }
    Ok((op, rest))
}

fn value(s: &str) -> Result<Option<String>, String> {
    if let Some(quoted) = s.strip_prefix('\'') {
        let end = quoted
            .find('\'')
            .ok_or_else(|| format!("unbalanced quote in value {s:?}"))?;
        if !quoted[end + 1..].trim().is_empty() {
            return Err(format!("unexpected text after value in {s:?}"));
        }
        return Ok(Some(quoted[..end].to_owned()));
    }
    if s.is_empty() || s.contains(char::is_whitespace) || s.contains(['\'', '"']) {
        return Err(format!("bad value {s:?}"));
    }
    Ok((!s.eq_ignore_ascii_case("null")).then(|| s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(attr: &str, op: Op, value: &str) -> Cond {
        Cond {
            attr: attr.into(),
            op,
            value: Some(value.into()),
            negated: false,
        }
    }

    #[test]
    fn grammar() {
        let web = cond("name", Op::Eq, "Web-01");
        for f in [
            "\"name='Web-01'\"",
            "name='Web-01'",
            " name = 'Web-01' ",
            "'name'='Web-01'",
            "name eq 'Web-01'",
            "name EQ 'Web-01'",
        ] {
            assert_eq!(parse(f), Ok(web.clone()), "{f}");
        }
        assert_eq!(
            parse("name=='Web-01'"),
            Ok(cond("name", Op::EqCase, "Web-01"))
        );
        assert_eq!(parse("name seq 'a b'"), Ok(cond("name", Op::EqCase, "a b")));
        assert_eq!(
            parse("name matches 'web-%'"),
            Ok(cond("name", Op::Matches, "web-%"))
        );
        assert_eq!(
            parse("state<>'Normal'"),
            Ok(cond("state", Op::Ne, "Normal"))
        );
        assert_eq!(
            parse("serverHardwareUri=null").unwrap(),
            Cond {
                attr: "serverHardwareUri".into(),
                op: Op::Eq,
                value: None,
                negated: false,
            }
        );
        assert_eq!(
            parse("enclosureBay=5"),
            Ok(cond("enclosureBay", Op::Eq, "5"))
        );
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "\"name='x'",
            "name='x'\"",
            "\"",
            "name='x",
            "name=x'",
            "'name='x'",
            "name='a'b'",
            "name ~ 'x'",
            "nameeq'x'",
            "='x'",
            "name=",
            "name='x' or 1=1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        let ci = parse("name='WEB-01'").unwrap();
        assert!(ci.accepts(Some("web-01")));
        assert!(!ci.accepts(Some("web-011")));
        assert!(!ci.accepts(None));
        let cs = parse("name=='WEB-01'").unwrap();
        assert!(cs.accepts(Some("WEB-01")));
        assert!(!cs.accepts(Some("web-01")));
        let m = parse("name matches 'hpe-%-0_1'").unwrap();
        assert!(m.accepts(Some("HPE-synergy-001")));
        assert!(m.accepts(Some("hpe--011")));
        assert!(!m.accepts(Some("hpe-synergy-0011")));
        assert!(parse("serverHardwareUri = null").unwrap().accepts(None));
        assert!(parse("state ne 'Normal'").unwrap().accepts(Some("Error")));
        let sm = parse("name smatches 'HPE-%'").unwrap();
        assert!(sm.accepts(Some("HPE-x")));
        assert!(!sm.accepts(Some("hpe-x")));
        assert!(parse("name sne 'a'").unwrap().accepts(Some("A")));
        let not = parse("NOT \"'name' = NULL\"").unwrap();
        assert!(not.negated);
        assert!(not.accepts(Some("x")));
        assert!(!not.accepts(None));
        assert_eq!(not.indexed_name(), None);
        assert_eq!(ci.indexed_name(), Some("WEB-01"));
        assert_eq!(m.indexed_name(), None);
    }
}
