//! The slice of Intersight's query language the simulator understands: `$filter` made of
//! `<Prop> eq '<string>'` and `Ancestors/any(t:t/Moid eq '<string>')` joined by `and`; `$top`
//! (default 100, at most 1,000), `$skip`, `$select`, `$inlinecount=allpages`, `$count=true`.
//! The query string is form-decoded: Cisco's SDK builds it with Python's `urlencode`, so a space
//! arrives as `+`, while other clients send `%20`. Anything else in a `$filter` is a 400, so a
//! client that sends what the simulator does not implement finds out.

/// Intersight's page size when `$top` is absent, and its ceiling.
pub const DEFAULT_TOP: usize = 100;
pub const MAX_TOP: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    pub filter: Vec<Predicate>,
    pub top: Option<usize>,
    pub skip: usize,
    pub select: Option<Vec<String>>,
    pub inline_count: bool,
    pub count_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// Case-sensitive, as Intersight compares strings.
    Eq(String, String),
    /// `Ancestors/any(t:t/Moid eq '<moid>')`.
    AncestorMoid(String),
}

pub fn parse_query(raw: &str) -> Result<Query, String> {
    let mut q = Query::default();
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        match key.as_ref() {
            "$filter" => q.filter = parse_filter(&value)?,
            "$top" => {
                let top = number(&key, &value)?;
                if top > MAX_TOP {
                    return Err(format!("$top must be at most {MAX_TOP}, got {top}"));
                }
                q.top = Some(top);
            }
            "$skip" => q.skip = number(&key, &value)?,
            "$select" => {
                q.select = Some(
                    value
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect(),
                )
            }
            "$inlinecount" => q.inline_count = value == "allpages",
            // Cisco's SDK sends Python's `True`.
            "$count" => q.count_only = value.eq_ignore_ascii_case("true"),
            // $orderby, $expand, $apply and friends do not change what the simulator serves.
            _ => {}
        }
    }
    Ok(q)
}

fn number(key: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("{key} must be a non-negative integer, got {value:?}"))
}

pub fn parse_filter(s: &str) -> Result<Vec<Predicate>, String> {
    let bad = || format!("unsupported or malformed $filter: {s:?}");
    let mut rest = s.trim();
    let mut out = Vec::new();
    loop {
        let (pred, after) = predicate(rest).ok_or_else(bad)?;
        out.push(pred);
        let after = after.trim_start();
        if after.is_empty() {
            return Ok(out);
        }
        rest = after.strip_prefix("and ").ok_or_else(bad)?.trim_start();
    }
}

/// One predicate at the start of `s`, and what follows it.
fn predicate(s: &str) -> Option<(Predicate, &str)> {
    if let Some(inner) = s.strip_prefix("Ancestors/any(") {
        let (var, body) = inner.split_once(':')?;
        let body = body
            .trim_start()
            .strip_prefix(var)?
            .strip_prefix("/Moid eq ")?;
        let (moid, after) = literal(body)?;
        let after = after.trim_start().strip_prefix(')')?;
        return Some((Predicate::AncestorMoid(moid), after));
    }
    let (prop, rest) = s.split_once(' ')?;
    let valid = prop.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && prop.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid {
        return None;
    }
    let (value, after) = literal(rest.trim_start().strip_prefix("eq ")?.trim_start())?;
    Some((Predicate::Eq(prop.to_owned(), value), after))
}

/// `'…'` with `''` for an embedded quote, and what follows the closing quote.
fn literal(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('\'')?;
    let mut out = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                chars.next();
                out.push('\'');
            } else {
                return Some((out, &body[i + 1..]));
            }
        } else {
            out.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_and_gateway_encodings_read_the_same() {
        let sdk = parse_query("%24filter=Name+eq+%27a%27&%24top=10&%24skip=20").unwrap();
        let gw = parse_query("$filter=Name%20eq%20%27a%27&$top=10&$skip=20").unwrap();
        assert_eq!(sdk, gw);
        assert_eq!(sdk.filter, vec![Predicate::Eq("Name".into(), "a".into())]);
        assert_eq!((sdk.top, sdk.skip), (Some(10), 20));
    }

    #[test]
    fn ancestors_and_conjunctions() {
        let f = parse_filter("Ancestors/any(t:t/Moid eq '5f1') and Name eq 'O''Brien'").unwrap();
        assert_eq!(
            f,
            vec![
                Predicate::AncestorMoid("5f1".into()),
                Predicate::Eq("Name".into(), "O'Brien".into())
            ]
        );
    }

    #[test]
    fn what_is_not_implemented_is_refused() {
        for bad in [
            "Name ne 'a'",
            "Name eq 'a' or Name eq 'b'",
            "Name eq 'unterminated",
            "contains(Name,'a')",
            "Name eq 'a' extra",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
        assert!(parse_query("$top=1001").is_err());
    }
}
