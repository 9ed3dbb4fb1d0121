//! The slice of OData query syntax the OME simulator understands: `$filter=<Prop> eq <literal>`,
//! `$top`, `$skip`. Keys and values are percent-decoded (Dell's RestOME sends `%24filter`), a
//! `+` is NOT a space (OME filtering breaks on `+`, which is why RestOME avoids it), and raw
//! `'`, `(`, `)`, `$` are accepted because Dell's `get_all_data_with_pagination` sends them.

use percent_encoding::percent_decode_str;

/// The page size OME uses when `$top` is absent.
pub const DEFAULT_TOP: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub filter: Option<Filter>,
    pub top: usize,
    pub skip: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub prop: String,
    pub value: Literal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    Str(String),
    Int(i64),
}

pub fn parse_query(raw: &str) -> Result<Query, String> {
    let mut query = Query {
        filter: None,
        top: DEFAULT_TOP,
        skip: 0,
    };
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k)?;
        let value = decode(v)?;
        match key.as_str() {
            "$filter" => query.filter = Some(parse_filter(&value)?),
            "$top" => query.top = number(&key, &value)?,
            "$skip" => query.skip = number(&key, &value)?,
            // $count, $orderby, $select and vendor extras do not change what is served.
            _ => {}
        }
    }
    Ok(query)
}

fn decode(s: &str) -> Result<String, String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("query part {s:?} is not UTF-8 once decoded"))
}

fn number(key: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| format!("{key} must be a non-negative integer, got {value:?}"))
}

/// `<Prop> eq '<string>'` (quotes inside doubled) or `<Prop> eq <integer>`.
pub fn parse_filter(s: &str) -> Result<Filter, String> {
    let bad = || format!("unsupported or malformed $filter: {s:?}");
    let s = s.trim();
    let (prop, rest) = s.split_once(' ').ok_or_else(bad)?;
    let valid_prop = prop.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && prop.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest = rest.trim_start().strip_prefix("eq ").ok_or_else(bad)?;
    if !valid_prop {
        return Err(bad());
    }
    let literal = rest.trim();
    let value = match literal.strip_prefix('\'') {
        Some(body) => Literal::Str(string_body(body).ok_or_else(bad)?),
        None => Literal::Int(literal.parse().map_err(|_| bad())?),
    };
    Ok(Filter {
        prop: prop.to_owned(),
        value,
    })
}

/// The text of a string literal after its opening quote; `None` unless exactly one closing
/// quote ends the input.
fn string_body(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\'' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\'') => out.push('\''),
            None => return Some(out),
            Some(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn str_filter(prop: &str, v: &str) -> Option<Filter> {
        Some(Filter {
            prop: prop.into(),
            value: Literal::Str(v.into()),
        })
    }

    #[test]
    fn encoded_and_raw_forms() {
        let q = parse_query("%24filter=DeviceName%20eq%20%27web01%27&%24top=5&%24skip=10").unwrap();
        assert_eq!(q.filter, str_filter("DeviceName", "web01"));
        assert_eq!((q.top, q.skip), (5, 10));
        let q = parse_query("$skip=50&$top=50&$filter=DeviceName%20eq%20'a(b)'").unwrap();
        assert_eq!(q.filter, str_filter("DeviceName", "a(b)"));
        let q = parse_query("").unwrap();
        assert_eq!((q.filter, q.top, q.skip), (None, DEFAULT_TOP, 0));
        let q = parse_query("$filter=Id%20eq%2025003&$count=true").unwrap();
        assert_eq!(
            q.filter,
            Some(Filter {
                prop: "Id".into(),
                value: Literal::Int(25003)
            })
        );
    }

    #[test]
    fn doubled_quotes() {
        assert_eq!(
            parse_filter("ProfileName eq 'O''Brien'").unwrap(),
            str_filter("ProfileName", "O'Brien").unwrap()
        );
        assert_eq!(
            parse_filter("ProfileName eq 'x'' or ''1'' eq ''1'").unwrap(),
            str_filter("ProfileName", "x' or '1' eq '1").unwrap()
        );
        assert_eq!(
            parse_filter("ProfileName eq ''").unwrap(),
            str_filter("ProfileName", "").unwrap()
        );
    }

    #[test]
    fn malformed_filters_are_refused() {
        for bad in [
            "ProfileName eq 'x' or '1' eq '1'",
            "ProfileName eq 'unterminated",
            "ProfileName eq 'a'b'",
            "ProfileName+eq+'x'",
            "ProfileName ne 'x'",
            "contains(ProfileName,'x')",
            "1Bad eq 'x'",
            "Id eq 12abc",
            "ProfileName eq",
            "",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
        assert!(parse_query("$filter=ProfileName+eq+%27x%27").is_err());
        assert!(parse_query("$top=-1").is_err());
        assert!(parse_query("$skip=x").is_err());
        assert!(parse_query("$filter=%FF").is_err());
    }
}
