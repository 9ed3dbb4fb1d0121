//! The little XML the UCS Manager API needs: a read-only element tree for responses and
//! attribute escaping for requests. UCSM answers are small (one profile hierarchy is ~35 KB),
//! so a tree is simpler and safer than streaming, and it keeps the parsers pure.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// One element with its attributes (entity-decoded) and child elements. Text is dropped:
/// the XML API carries every value in attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
}

impl Element {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The attribute, or `None` when absent or blank: UCS writes `""` for "not set".
    pub fn attr_nonempty(&self, key: &str) -> Option<&str> {
        self.attr(key).map(str::trim).filter(|v| !v.is_empty())
    }

    #[cfg(test)]
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// Deeper than any UCSM answer (a hierarchical `lsServer` is ~6 levels). The tree is built
/// without recursion, but dropping it recurses, so depth is bounded here, not by the stack.
pub const MAX_DEPTH: usize = 64;

/// Parses a whole document into its root element. Declarations, comments and text are skipped.
pub fn parse(body: &[u8]) -> Result<Element, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Element> = Vec::new();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("XML error at byte {}: {e}", reader.buffer_position()))?;
        match event {
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!("elements nested deeper than {MAX_DEPTH}"));
                }
                stack.push(element(&start)?)
            }
            Event::Empty(start) => {
                let el = element(&start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::End(_) => {
                let done = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Ok(done),
                }
            }
            Event::Eof => return Err("document ended before its root element closed".into()),
            _ => {}
        }
    }
}

fn element(start: &BytesStart<'_>) -> Result<Element, String> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("bad attribute in <{name}>: {e}"))?;
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let value = attr
            .unescape_value()
            .map_err(|e| format!("bad attribute value in <{name} {key}>: {e}"))?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
    })
}

/// Escapes a value for a double-quoted XML attribute. `ServerName`'s charset never needs it,
/// but the password, the user name and DNs read back from UCSM are not ours to trust.
pub fn escape_attr(value: &str) -> Cow<'_, str> {
    if !value
        .chars()
        .any(|c| matches!(c, '&' | '<' | '>' | '"' | '\'' | '\n' | '\r' | '\t'))
    {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 16);
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Attribute-value normalisation would turn raw whitespace controls into spaces.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_refused_before_it_costs_stack() {
        let deep = "<a>".repeat(100_000);
        assert!(parse(deep.as_bytes()).unwrap_err().contains("deeper"));
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(escape_attr("web-01"), "web-01");
        assert!(matches!(escape_attr("web-01"), Cow::Borrowed(_)));
        assert_eq!(escape_attr("a&b"), "a&amp;b");
        assert_eq!(escape_attr("<x>"), "&lt;x&gt;");
        assert_eq!(escape_attr("say \"hi\""), "say &quot;hi&quot;");
        assert_eq!(escape_attr("it's"), "it&apos;s");
        assert_eq!(escape_attr("a\nb\tc\r"), "a&#10;b&#9;c&#13;");
        assert_eq!(escape_attr("&amp;"), "&amp;amp;", "never double-decodes");
    }

    #[test]
    fn escaped_values_round_trip_through_the_parser() {
        let nasty = "p&<>\"'\n x";
        let doc = format!("<aaaLogin inPassword=\"{}\"/>", escape_attr(nasty));
        let root = parse(doc.as_bytes()).unwrap();
        assert_eq!(root.attr("inPassword"), Some(nasty));
    }

    #[test]
    fn parses_nested_and_empty_elements() {
        let root = parse(
            br#"<?xml version="1.0"?>
            <a x="1"> <b y="&amp;"/> <c><d/></c> text </a>"#,
        )
        .unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.attr("x"), Some("1"));
        assert_eq!(root.children.len(), 2);
        assert_eq!(root.child("b").and_then(|b| b.attr("y")), Some("&"));
        assert_eq!(root.child("c").map(|c| c.children.len()), Some(1));
        assert_eq!(root.attr_nonempty("missing"), None);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b""[..],
            b"<a>",
            b"<a></b>",
            b"not xml at all",
            b"<a x=1/>",
            b"\xff\xfe",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
