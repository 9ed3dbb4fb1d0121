//! OData query building (OME, Intersight). Kept pure so the escaping, the one place where a value from a
//! caller or from the appliance enters a query language, is tested on its own.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 "unreserved" is encoded. In particular a space becomes `%20`, never
/// `+`: OME does not treat `+` as a space in `$filter` (Dell's RestOME rewrites it for that
/// reason), and `'`, `&`, `#`, `=` can never end the literal or the parameter early.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An OData v4 string literal: single quotes, an embedded quote doubled (`O'Brien` →
/// `'O''Brien'`, OData URL conventions §5.1.1.6.1).
pub fn string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `<prop> eq '<value>'`, not yet URL-encoded. `prop` is always a constant from this crate.
pub fn filter_eq(prop: &str, value: &str) -> String {
    format!("{prop} eq {}", string_literal(value))
}

/// Percent-encodes a query parameter value.
pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// The `$filter=…` query parameter for `<prop> eq '<value>'`, ready to put in a URL.
pub fn filter_param(prop: &str, value: &str) -> String {
    format!("$filter={}", encode_query_value(&filter_eq(prop, value)))
}

/// One page of a filtered query. The filter is repeated on every page because OME's
/// `@odata.nextLink` drops it.
pub fn page_query(filter: &str, top: u32, skip: u64) -> String {
    format!("{filter}&$top={top}&$skip={skip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_quotes() {
        assert_eq!(string_literal("web01"), "'web01'");
        assert_eq!(string_literal("O'Brien"), "'O''Brien'");
        assert_eq!(string_literal("''"), "''''''");
        assert_eq!(string_literal(""), "''");
    }

    #[test]
    fn filter_is_fully_encoded() {
        assert_eq!(
            filter_param("ProfileName", "dell-r650-001"),
            "$filter=ProfileName%20eq%20%27dell-r650-001%27"
        );
        assert_eq!(
            filter_param("DeviceName", "rack1.node_2:eth~"),
            "$filter=DeviceName%20eq%20%27rack1.node_2%3Aeth~%27"
        );
    }

    #[test]
    fn hostile_values_stay_inside_the_literal() {
        let q = filter_param("ProfileName", "x' or ProfileName ne '' &$top=9999#+a b");
        assert_eq!(
            q,
            "$filter=ProfileName%20eq%20%27x%27%27%20or%20ProfileName%20ne%20%27%27%27%27\
             %20%26%24top%3D9999%23%2Ba%20b%27"
        );
        let value = q.trim_start_matches("$filter=");
        for raw in [' ', '\'', '&', '=', '#', '+', '$'] {
            assert!(!value.contains(raw), "{raw:?} leaked into {value}");
        }
    }

    #[test]
    fn non_ascii_is_utf8_percent_encoded() {
        assert_eq!(encode_query_value("é"), "%C3%A9");
    }

    #[test]
    fn pages_repeat_the_filter() {
        let f = filter_param("ProfileName", "a");
        assert_eq!(
            page_query(&f, 8, 16),
            "$filter=ProfileName%20eq%20%27a%27&$top=8&$skip=16"
        );
    }
}
