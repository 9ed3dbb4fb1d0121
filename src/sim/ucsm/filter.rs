//! `inFilter` of the UCSM XML API: property filters (`eq`, `ne`, `gt`, `ge`, `lt`, `le`,
//! `wcard`, `anybit`, `allbits`, `bw`) nested in `and`/`or`/`not`.
//!
//! `wcard` takes a regular expression matched anywhere in the value (unanchored, as UCSM's
//! own use of `wcard dn="sys/chassis-1/blade-2"` suggests). This simulator implements the
//! subset clients use: literals, `\x` escapes, `.`, `[...]` classes with ranges and `^`
//! negation, `* + ?` and the anchors `^ $`. Groups, alternation and `{n,m}` are refused with
//! the API's parse error rather than silently mismatching.

use crate::vendors::ucsm::xml::Element;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Cmp {
        op: Op,
        prop: String,
        value: String,
    },
    Wcard {
        prop: String,
        re: Regex,
    },
    Bits {
        all: bool,
        prop: String,
        value: String,
    },
    Between {
        prop: String,
        first: String,
        second: String,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// What an index can answer instead of a class scan.
#[derive(Debug, PartialEq, Eq)]
pub enum Hint<'a> {
    /// `name` equals this exactly.
    Name(&'a str),
    /// `name` equals this ignoring ASCII case (lower-cased).
    FoldedName(String),
}

impl Filter {
    pub fn from_element(el: &Element) -> Result<Self, String> {
        let prop = || {
            el.attr("property")
                .map(str::to_owned)
                .ok_or_else(|| format!("<{}> needs a property", el.name))
        };
        let value = || el.attr("value").unwrap_or("").to_owned();
        let children = || -> Result<Vec<Filter>, String> {
            el.children.iter().map(Filter::from_element).collect()
        };
        let op = match el.name.as_str() {
            "eq" => Some(Op::Eq),
            "ne" => Some(Op::Ne),
            "gt" => Some(Op::Gt),
            "ge" => Some(Op::Ge),
            "lt" => Some(Op::Lt),
            "le" => Some(Op::Le),
            _ => None,
        };
        if let Some(op) = op {
            return Ok(Self::Cmp {
                op,
                prop: prop()?,
                value: value(),
            });
        }
        Ok(match el.name.as_str() {
            "wcard" => Self::Wcard {
                prop: prop()?,
                re: Regex::parse(&value())?,
            },
            "anybit" | "allbits" => Self::Bits {
                all: el.name == "allbits",
                prop: prop()?,
                value: value(),
            },
            "bw" => Self::Between {
                prop: prop()?,
                first: el.attr("firstValue").unwrap_or("").to_owned(),
                second: el.attr("secondValue").unwrap_or("").to_owned(),
            },
            "and" => Self::And(children()?),
            "or" => Self::Or(children()?),
            "not" => match children()?.into_iter().next() {
                Some(f) => Self::Not(Box::new(f)),
                None => return Err("<not> needs one filter".into()),
            },
            other => return Err(format!("unknown filter <{other}>")),
        })
    }

    /// `get(prop)` reads an attribute of the object under test (absent = empty, as UCSM
    /// shows unset properties).
    pub fn matches<'a>(&self, get: &impl Fn(&str) -> Option<&'a str>) -> bool {
        let val = |p: &str| get(p).unwrap_or("");
        match self {
            Self::Cmp { op, prop, value } => {
                let ord = compare(val(prop), value);
                match op {
                    Op::Eq => ord.is_eq(),
                    Op::Ne => ord.is_ne(),
                    Op::Gt => ord.is_gt(),
                    Op::Ge => ord.is_ge(),
                    Op::Lt => ord.is_lt(),
                    Op::Le => ord.is_le(),
                }
            }
            Self::Wcard { prop, re } => re.is_match(val(prop)),
            Self::Bits { all, prop, value } => {
                let have: Vec<&str> = val(prop).split(',').map(str::trim).collect();
                let mut want = value.split(',').map(str::trim).filter(|w| !w.is_empty());
                if *all {
                    want.all(|w| have.contains(&w))
                } else {
                    want.any(|w| have.contains(&w))
                }
            }
            Self::Between {
                prop,
                first,
                second,
            } => compare(val(prop), first).is_ge() && compare(val(prop), second).is_le(),
            Self::And(fs) => fs.iter().all(|f| f.matches(get)),
            Self::Or(fs) => fs.iter().any(|f| f.matches(get)),
            Self::Not(f) => !f.matches(get),
        }
    }

    /// A name lookup that narrows the candidates; the full filter is still applied after.
    pub fn hint(&self) -> Option<Hint<'_>> {
        match self {
            Self::Cmp {
                op: Op::Eq,
                prop,
                value,
            } if prop == "name" => Some(Hint::Name(value)),
            Self::Wcard { prop, re } if prop == "name" => {
                re.exact_case_insensitive_literal().map(Hint::FoldedName)
            }
            Self::And(fs) => fs.iter().find_map(Filter::hint),
            _ => None,
        }
    }
}

/// Numbers compare as numbers (UCSM ids and orders are numeric strings), the rest as text.
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Char(char),
    Any,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Start,
    End,
}

impl Atom {
    fn accepts(&self, c: char) -> bool {
        match self {
            Self::Char(x) => *x == c,
            Self::Any => true,
            Self::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
            Self::Start | Self::End => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    atom: Atom,
    min: usize,
    max: usize,
}

/// The regex subset described in the module comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regex {
    pieces: Vec<Piece>,
}

impl Regex {
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let atom = match c {
                '\\' => Atom::Char(chars.next().ok_or("trailing backslash")?),
                '.' => Atom::Any,
                '^' => Atom::Start,
                '$' => Atom::End,
                '[' => parse_class(&mut chars)?,
                '*' | '+' | '?' => {
                    let last = pieces
                        .last_mut()
                        .filter(|p| p.min == 1 && p.max == 1)
                        .filter(|p| !matches!(p.atom, Atom::Start | Atom::End))
                        .ok_or_else(|| format!("nothing to repeat before {c:?}"))?;
                    (last.min, last.max) = match c {
                        '*' => (0, usize::MAX),
                        '+' => (1, usize::MAX),
                        _ => (0, 1),
                    };
                    continue;
                }
                '(' | ')' | '|' | '{' | '}' => {
                    return Err(format!("regex feature {c:?} is not supported"))
                }
                c => Atom::Char(c),
            };
            pieces.push(Piece {
                atom,
                min: 1,
                max: 1,
            });
        }
        Ok(Self { pieces })
    }

    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        (0..=chars.len()).any(|start| match_here(&self.pieces, &chars, start))
    }

    /// `^[Ww][Ee][Bb]-01$`-shaped patterns: one fixed string in any case.
    pub fn exact_case_insensitive_literal(&self) -> Option<String> {
        let (first, rest) = self.pieces.split_first()?;
        let (last, middle) = rest.split_last()?;
        if first.atom != Atom::Start || last.atom != Atom::End {
            return None;
        }
        middle
            .iter()
            .map(|p| {
                if (p.min, p.max) != (1, 1) {
                    return None;
                }
                match &p.atom {
                    Atom::Char(c) => Some(c.to_ascii_lowercase()),
                    Atom::Class {
                        negated: false,
                        ranges,
                    } => {
                        let mut singles = ranges
                            .iter()
                            .map(|(lo, hi)| (lo == hi).then_some(lo.to_ascii_lowercase()));
                        let c = singles.next()??;
                        singles.all(|s| s == Some(c)).then_some(c)
                    }
                    _ => None,
                }
            })
            .collect()
    }
}

fn parse_class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Atom, String> {
    let negated = chars.next_if_eq(&'^').is_some();
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = chars.next().ok_or("unterminated [")?;
        let lo = match c {
            ']' if !first => return Ok(Atom::Class { negated, ranges }),
            '\\' => chars.next().ok_or("trailing backslash")?,
            c => c,
        };
        first = false;
        let mut lookahead = chars.clone();
        if lookahead.next() == Some('-') && lookahead.peek().is_some_and(|n| *n != ']') {
            chars.next();
            let hi = match chars.next().ok_or("unterminated [")? {
                '\\' => chars.next().ok_or("trailing backslash")?,
                c => c,
            };
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
}

fn match_here(pieces: &[Piece], text: &[char], pos: usize) -> bool {
    let Some((piece, rest)) = pieces.split_first() else {
        return true;
    };
    match piece.atom {
        Atom::Start => pos == 0 && match_here(rest, text, pos),
        Atom::End => pos == text.len() && match_here(rest, text, pos),
        _ => {
            // Greedy with backtracking; names are short, so this stays cheap.
            let mut n = 0;
            while n < piece.max && pos + n < text.len() && piece.atom.accepts(text[pos + n]) {
                n += 1;
            }
            if n < piece.min {
                return false;
            }
            (piece.min..=n)
                .rev()
                .any(|k| match_here(rest, text, pos + k))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::ucsm::xml::parse;

    fn re(p: &str) -> Regex {
        Regex::parse(p).unwrap()
    }

    #[test]
    fn regex_subset() {
        assert!(
            re("blade-2").is_match("sys/chassis-1/blade-2"),
            "unanchored"
        );
        assert!(!re("^blade-2").is_match("sys/chassis-1/blade-2"));
        assert!(re(r"^[Ww][Ee][Bb]-01$").is_match("WeB-01"));
        assert!(!re(r"^[Ww][Ee][Bb]-01$").is_match("web-010"));
        assert!(re(r"^a\.b$").is_match("a.b"));
        assert!(!re(r"^a\.b$").is_match("axb"));
        assert!(re("^a.b$").is_match("axb"));
        assert!(re("^ab*c+d?$").is_match("acc"));
        assert!(re("^ab*c+d?$").is_match("abbbcd"));
        assert!(!re("^ab*c+d?$").is_match("abd"));
        assert!(re(r"^[\-\.:_].*").is_match("-x"));
        assert!(re("^[a-c0-9]+$").is_match("abc019"));
        assert!(!re("^[^a-c]+$").is_match("xyzb"));
        assert!(re("^x-$").is_match("x-"));
        assert!(re("^[]a]$").is_match("]"));
        assert!(re("").is_match("anything"));
        for bad in ["(a)", "a|b", "a{2}", "*a", "[ab", "a\\", "^*"] {
            assert!(Regex::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literal_detection_for_the_index() {
        assert_eq!(
            re(r"^[Ww][Ee][Bb]-01\.x$").exact_case_insensitive_literal(),
            Some("web-01.x".into())
        );
        assert_eq!(
            re("^Web$").exact_case_insensitive_literal(),
            Some("web".into())
        );
        for not_literal in ["web", "^web", "^w.b$", "^[ab]$", "^we*b$", "^[^W]$"] {
            assert_eq!(
                re(not_literal).exact_case_insensitive_literal(),
                None,
                "{not_literal}"
            );
        }
    }

    fn filter(xml: &str) -> Filter {
        Filter::from_element(&parse(xml.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn filters_evaluate_like_ucsm() {
        let attrs = [
            ("name", "web-01"),
            ("type", "instance"),
            ("order", "10"),
            ("flags", "a,b"),
        ];
        let get = |p: &str| attrs.iter().find(|(k, _)| *k == p).map(|(_, v)| *v);
        let yes = [
            r#"<eq class="lsServer" property="name" value="web-01"/>"#,
            r#"<ne property="name" value="Web-01"/>"#,
            r#"<gt property="order" value="9"/>"#,
            r#"<le property="order" value="10"/>"#,
            r#"<lt property="order" value="100"/>"#,
            r#"<ge property="descr" value=""/>"#,
            r#"<wcard property="name" value="eb-0"/>"#,
            r#"<anybit property="flags" value="b,c"/>"#,
            r#"<allbits property="flags" value="a,b"/>"#,
            r#"<bw property="order" firstValue="2" secondValue="10"/>"#,
            r#"<and><eq property="type" value="instance"/><wcard property="name" value="^[Ww]"/></and>"#,
            r#"<or><eq property="name" value="x"/><eq property="name" value="web-01"/></or>"#,
            r#"<not><eq property="name" value="x"/></not>"#,
        ];
        for f in yes {
            assert!(filter(f).matches(&get), "{f}");
        }
        let no = [
            r#"<eq property="name" value="WEB-01"/>"#,
            r#"<allbits property="flags" value="a,c"/>"#,
            r#"<and><eq property="type" value="instance"/><eq property="name" value="x"/></and>"#,
            r#"<not><eq property="name" value="web-01"/></not>"#,
        ];
        for f in no {
            assert!(!filter(f).matches(&get), "{f}");
        }
        for bad in [
            "<eq value=\"x\"/>",
            "<like property=\"a\"/>",
            "<not/>",
            "<wcard property=\"n\" value=\"(x)\"/>",
        ] {
            assert!(
                Filter::from_element(&parse(bad.as_bytes()).unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn hints_use_the_name_index_only_when_sound() {
        let f = filter(
            r#"<and><wcard property="name" value="^[Ww]eb$"/><eq property="type" value="instance"/></and>"#,
        );
        assert_eq!(f.hint(), Some(Hint::FoldedName("web".into())));
        let f = filter(r#"<eq property="name" value="Web"/>"#);
        assert_eq!(f.hint(), Some(Hint::Name("Web")));
        assert_eq!(
            filter(r#"<or><eq property="name" value="a"/></or>"#).hint(),
            None
        );
        assert_eq!(
            filter(r#"<wcard property="name" value="web"/>"#).hint(),
            None
        );
    }
}
