//! README's "Configuration reference" table against the config type.
//!
//! The keys the gateway accepts are not listed by hand here: they are read off the deserializer
//! itself. Every config struct has `deny_unknown_fields`, so a probe key placed in a table makes
//! `Config::from_toml_str` fail with serde's "unknown field `…`, expected one of `a`, `b`, …" and
//! the path of that table; a field whose value can itself hold such a probe is a table (or, when
//! it takes a list of them, an array of tables) and is explored the same way. The table must list
//! exactly the leaf keys found; a table-valued key may instead be one row "table, keys as `[x]`"
//! when its keys are exactly those of `[x]`. Each default written as one TOML literal in backticks
//! is then set explicitly on a minimal config and must give the same config as leaving it out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use inventory_gateway::config::{Config, ConfigError};

const PROBE: &str = "__igw_reference_probe";

/// A minimal valid config: one system, everything else defaulted.
const MINIMAL: &str = r#"
[[systems]]
name = "s"
kind = "oneview"
endpoint = "https://s.example"
username = "u"
password = "p"
"#;

/// A minimal valid UCS Central: its `[systems.ucsm]` keys are only accepted there.
const MINIMAL_CENTRAL: &str = r#"
[[systems]]
name = "s"
kind = "ucs-central"
endpoint = "https://s.example"
username = "u"
password = "p"
[systems.ucsm]
username = "u"
password = "p"
"#;

/// A minimal valid Intersight with a CIMC login: its `[systems.cimc]` keys are only accepted there.
fn minimal_intersight() -> String {
    format!(
        "[[systems]]\nname = \"s\"\nkind = \"intersight\"\nendpoint = \"https://s.example\"\n\
         api_key_id = \"a/b/c\"\nprivate_key_file = {:?}\n[systems.cimc]\nusername = \"u\"\npassword = \"p\"\n",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/intersight/ec-sec1.pem")
    )
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    /// The first entry of an array of tables (`systems[]`).
    Item,
}

/// `root` with `leaf` placed at `path`, creating tables and one-entry arrays on the way.
fn place(root: &mut toml::Table, path: &[Seg], leaf: toml::Value) {
    let Seg::Key(first) = &path[0] else {
        panic!("a path starts with a key")
    };
    if path.len() == 1 {
        root.insert(first.clone(), leaf);
        return;
    }
    let entry = root.entry(first.clone()).or_insert_with(|| {
        if path[1] == Seg::Item {
            toml::Value::Array(vec![toml::Value::Table(toml::Table::new())])
        } else {
            toml::Value::Table(toml::Table::new())
        }
    });
    match (entry, &path[1]) {
        (toml::Value::Array(items), Seg::Item) => {
            let toml::Value::Table(t) = &mut items[0] else {
                panic!("array of tables expected")
            };
            if path.len() == 2 {
                *t = match leaf {
                    toml::Value::Table(l) => l,
                    other => panic!("an array item must be a table, got {other}"),
                };
            } else {
                place(t, &path[2..], leaf);
            }
        }
        (toml::Value::Table(t), _) => place(t, &path[1..], leaf),
        (other, _) => panic!("cannot descend into {other}"),
    }
}

fn load(table: toml::Table) -> Result<Config, ConfigError> {
    Config::from_toml_str(&toml::to_string(&table).unwrap())
}

/// The field names serde expects where `path` points, if a table (struct) is there.
fn fields_at(path: &[Seg]) -> Option<Vec<String>> {
    let mut probe = toml::Table::new();
    probe.insert(PROBE.into(), toml::Value::Integer(0));
    let mut root = toml::Table::new();
    if path.is_empty() {
        root = probe;
    } else {
        place(&mut root, path, toml::Value::Table(probe));
    }
    let reason = match load(root) {
        Err(ConfigError::Invalid { reason, .. }) => reason,
        _ => return None,
    };
    let marker = format!("unknown field `{PROBE}`");
    if !reason.contains(&marker) {
        return None;
    }
    if reason.contains("there are no fields") {
        return Some(Vec::new());
    }
    // serde's sentence is the first line; toml adds "in `table`" context after it.
    let sentence = reason.lines().next().unwrap_or_default();
    let expected = sentence
        .split_once("expected")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("unexpected serde message: {reason}"));
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Item => out.push_str("[]"),
        }
    }
    out
}

/// What the config type accepts: each key (README spelling) → its child keys when it is a table.
fn accepted(
    path: &mut Vec<Seg>,
    fields: Vec<String>,
    out: &mut BTreeMap<String, Option<BTreeSet<String>>>,
) {
    for f in fields {
        path.push(Seg::Key(f));
        if let Some(children) = fields_at(path) {
            out.insert(render(path), Some(children.iter().cloned().collect()));
            accepted(path, children, out);
        } else {
            path.push(Seg::Item);
            if let Some(children) = fields_at(path) {
                out.insert(render(path), Some(children.iter().cloned().collect()));
                accepted(path, children, out);
            } else {
                path.pop();
                out.insert(render(path), None);
            }
            if path.last() == Some(&Seg::Item) {
                path.pop();
            }
        }
        path.pop();
    }
}

fn accepted_keys() -> BTreeMap<String, Option<BTreeSet<String>>> {
    let root = fields_at(&[]).expect("Config denies unknown fields");
    assert!(root.contains(&"systems".to_owned()), "{root:?}");
    let mut out = BTreeMap::new();
    accepted(&mut Vec::new(), root, &mut out);
    out
}

struct Row {
    key: String,
    ty: String,
    default: String,
}

fn readme_rows() -> Vec<Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let section = text
        .split("\n## Configuration reference\n")
        .nth(1)
        .expect("README has a `## Configuration reference` section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<String> = line
                .replace("\\|", "\u{1}")
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().replace('\u{1}', "|"))
                .collect();
            assert_eq!(cells.len(), 4, "4 cells expected: {line}");
            Row {
                key: cells[0].trim_matches('`').to_owned(),
                ty: cells[1].clone(),
                default: cells[2].clone(),
            }
        })
        .collect()
}

/// `"5m"` from a cell that is exactly one backticked literal, else None.
fn literal(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.contains('`')).then_some(inner)
}

fn path_of(key: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in key.split('.') {
        match part.strip_suffix("[]") {
            Some(k) => {
                out.push(Seg::Key(k.to_owned()));
                out.push(Seg::Item);
            }
            None => out.push(Seg::Key(part.to_owned())),
        }
    }
    out
}

#[test]
fn readme_configuration_reference_lists_exactly_the_accepted_keys() {
    let accepted = accepted_keys();
    let rows = readme_rows();
    assert!(rows.len() > 20, "the table was not found or is empty");

    let mut documented = BTreeSet::new();
    let mut covered_tables = BTreeSet::new();
    for row in &rows {
        assert!(
            documented.insert(row.key.clone()),
            "{} is listed twice",
            row.key
        );
        match accepted.get(&row.key) {
            None => panic!(
                "README lists `{}`, which the config does not accept",
                row.key
            ),
            Some(None) => {}
            Some(Some(children)) => {
                // A whole table in one row: "table, keys as `[x]`" with exactly x's keys.
                let like = row
                    .ty
                    .split_once("keys as `[")
                    .and_then(|(_, rest)| rest.split_once("]`"))
                    .map(|(name, _)| name)
                    .unwrap_or_else(|| {
                        panic!(
                            "`{}` is a table: list its keys, or say \"table, keys as `[x]`\"",
                            row.key
                        )
                    });
                assert_eq!(
                    accepted.get(like),
                    Some(&Some(children.clone())),
                    "`{}` does not take exactly the keys of `[{like}]`",
                    row.key
                );
                covered_tables.insert(row.key.clone());
            }
        }
    }
    let missing: Vec<&String> = accepted
        .iter()
        .filter(|(key, children)| children.is_none() && !documented.contains(*key))
        .map(|(key, _)| key)
        .filter(|key| {
            !covered_tables
                .iter()
                .any(|t| key.starts_with(&format!("{t}.")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys the config accepts but README's Configuration reference does not list: {missing:?}"
    );
}

#[test]
fn readme_configuration_reference_defaults_are_the_code_defaults() {
    let mut checked = 0;
    for row in readme_rows() {
        let Some(lit) = literal(&row.default) else {
            continue;
        };
        let base = if row.key.starts_with("systems[].ucsm.") {
            MINIMAL_CENTRAL.to_owned()
        } else if row.key.starts_with("systems[].cimc.") {
            minimal_intersight()
        } else if row.key.starts_with("systems[].bmc.") {
            format!(
                "{MINIMAL}verify_bmc = true\n[systems.bmc]\nusername = \"u\"\npassword = \"p\"\n"
            )
        } else {
            MINIMAL.to_owned()
        };
        let minimal: toml::Table = base.parse().unwrap();
        let baseline = format!("{:?}", load(minimal.clone()).unwrap());
        let value: toml::Table = format!("v = {lit}")
            .parse()
            .unwrap_or_else(|e| panic!("`{}` default {lit} is not a TOML literal: {e}", row.key));
        let mut table = minimal.clone();
        place(&mut table, &path_of(&row.key), value["v"].clone());
        let explicit =
            load(table).unwrap_or_else(|e| panic!("`{} = {lit}` is refused: {e}", row.key));
        assert_eq!(
            format!("{explicit:?}"),
            baseline,
            "README says `{}` defaults to {lit}, but the code's default differs",
            row.key
        );
        checked += 1;
    }
    assert!(checked > 30, "only {checked} defaults were checked");
}
