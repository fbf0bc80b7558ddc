//! The config reference agrees with the code (issue 7): every key the config
//! file accepts is documented in `docs/config.md` AND in
//! `config/raftinel.example.toml` (commented out or not), and the example
//! lists no key the code does not accept.
//!
//! The key list is derived from the code, not written by hand: every struct
//! under `src/` that derives `Deserialize` is parsed (field names, `#[serde(
//! rename = "...")]`, `flatten`, `skip`), and the keys are collected by walking
//! from `RawConfig` (src/config.rs) through the field types: a field whose
//! type names another deserialized struct is a table (`[raft]`, `[[group]]`,
//! `[alerts.memory]`), any other field is a key. A new key in any raw struct,
//! or a new table wired into `RawConfig`, is therefore required here at once.
//!
//! What counts as documented:
//! - `docs/config.md`: the key in backticks (`` `tick_ms` ``) in a section
//!   whose heading names its table (`` ## `[raft]` ``); sections under it
//!   without a table in their heading belong to it too. Top-level keys belong
//!   in sections that name no table. A nested key may also be written dotted
//!   in its parent's section (`` `memory.percent` `` under `` `[alerts]` ``).
//! - the example: a `key = ...` line, commented out or not, after the table's
//!   header (`[raft]`, `[[group]]`, `# [alerts.memory]`), or a dotted key
//!   under a parent table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The struct the walk starts from, and its file.
const ROOT: (&str, &str) = ("RawConfig", "src/config.rs");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// Rust source: deserialized structs and their fields
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Field {
    /// The key as written in TOML (after `rename` / `rename_all`).
    key: String,
    /// The type as written.
    ty: String,
    flatten: bool,
}

#[derive(Clone, Debug)]
struct RustStruct {
    name: String,
    /// Relative to the repository (`src/alerts.rs`).
    file: String,
    fields: Vec<Field>,
}

/// The `#[...]` attribute texts gathered so far, joined.
fn serde_attr_value<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    // `rename = "type"` (not `rename_all`): look for the name followed by `=`.
    let mut rest = attrs;
    while let Some(p) = rest.find(name) {
        let before_ok = p == 0
            || !rest[..p]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
        let after = rest[p + name.len()..].trim_start();
        if before_ok {
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start().strip_prefix('"')?;
                return v.split('"').next();
            }
        }
        rest = &rest[p + name.len()..];
    }
    None
}

fn has_word(attrs: &str, word: &str) -> bool {
    attrs
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|w| w == word)
}

fn apply_rename_all(name: &str, rule: Option<&str>) -> String {
    match rule {
        Some("kebab-case") => name.replace('_', "-"),
        Some("lowercase") => name.to_lowercase(),
        Some("UPPERCASE") | Some("SCREAMING_SNAKE_CASE") => name.to_uppercase(),
        Some("SCREAMING-KEBAB-CASE") => name.to_uppercase().replace('_', "-"),
        Some("camelCase") | Some("PascalCase") => {
            let mut out = String::new();
            let mut upper = rule == Some("PascalCase");
            for c in name.chars() {
                if c == '_' {
                    upper = true;
                } else if upper {
                    out.extend(c.to_uppercase());
                    upper = false;
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => name.to_string(),
    }
}

/// Text without `//` comments (string literals containing `//` are rare in
/// struct bodies; `"http://"` in attributes is kept by skipping inside quotes).
fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    let bytes = line.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'"' if i == 0 || bytes[i - 1] != b'\\' => in_str = !in_str,
            b'/' if !in_str && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Every `struct Name { ... }` of `text` that derives `Deserialize`.
fn parse_structs(file: &str, text: &str) -> Vec<RustStruct> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = strip_comment(lines[i]).trim();
        let Some(name) = struct_name(line) else {
            i += 1;
            continue;
        };
        // The attributes above it (doc comments and blank lines skipped).
        let mut attrs = String::new();
        let mut j = i;
        while j > 0 {
            let prev = lines[j - 1].trim();
            if prev.starts_with("#[") || prev.starts_with("///") || prev.starts_with("//") {
                attrs.insert_str(0, prev);
                j -= 1;
            } else if prev.ends_with(")]") || prev.ends_with(',') || prev.ends_with('(') {
                // A multi-line attribute.
                attrs.insert_str(0, prev);
                j -= 1;
            } else {
                break;
            }
        }
        // `#[serde(try_from = "String")]` and friends: read from a scalar,
        // not a table.
        let serde_attrs: String = attrs
            .split("#[")
            .filter(|a| a.starts_with("serde"))
            .collect();
        let deserialize = attrs.contains("Deserialize")
            && serde_attr_value(&serde_attrs, "try_from").is_none()
            && serde_attr_value(&serde_attrs, "from").is_none()
            && !has_word(&serde_attrs, "transparent");
        let rename_all = serde_attr_value(&attrs, "rename_all");
        // The body: from the `{` to its matching `}`.
        let mut depth = 0i32;
        let mut body = Vec::new();
        let mut k = i;
        'outer: while k < lines.len() {
            let l = strip_comment(lines[k]);
            for c in l.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break 'outer;
                        }
                    }
                    _ => {}
                }
            }
            if k > i {
                body.push(l);
            }
            k += 1;
        }
        if deserialize && line.contains('{') {
            out.push(RustStruct {
                name: name.to_string(),
                file: file.to_string(),
                fields: parse_fields(&body, rename_all),
            });
        }
        i = k.max(i + 1);
    }
    out
}

/// `pub struct RawGroup {` -> `RawGroup`. Tuple and unit structs: `None`
/// (they have no keys).
fn struct_name(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("pub(crate) ")
        .or_else(|| line.strip_prefix("pub(super) "))
        .or_else(|| line.strip_prefix("pub "))
        .unwrap_or(line);
    let rest = rest.strip_prefix("struct ")?;
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let tail = rest[end..].trim_start();
    if !(tail.starts_with('{') || tail.starts_with('<') || tail.is_empty()) {
        return None;
    }
    Some(&rest[..end])
}

/// Fields of a struct body (nested braces in types are not expected).
fn parse_fields(body: &[&str], rename_all: Option<&str>) -> Vec<Field> {
    let mut fields = Vec::new();
    let mut attrs = String::new();
    let mut pending_attr = false;
    let mut field_text = String::new();
    for raw in body {
        let l = raw.trim();
        if l.is_empty() || l.starts_with("///") {
            continue;
        }
        if pending_attr || l.starts_with("#[") {
            attrs.push_str(l);
            // Balanced brackets close the attribute.
            let open = attrs.matches('[').count();
            let close = attrs.matches(']').count();
            pending_attr = open > close;
            continue;
        }
        field_text.push_str(l);
        field_text.push(' ');
        // A field ends with `,` at depth 0 of `<>`/`()` (or is the last).
        let angle = field_text.matches('<').count() as i32 - field_text.matches('>').count() as i32;
        if !(l.ends_with(',') && angle <= 0) {
            continue;
        }
        let text = std::mem::take(&mut field_text);
        let a = std::mem::take(&mut attrs);
        if let Some(f) = field(&text, &a, rename_all) {
            fields.push(f);
        }
    }
    if !field_text.trim().is_empty() {
        if let Some(f) = field(&field_text, &attrs, rename_all) {
            fields.push(f);
        }
    }
    fields
}

fn field(text: &str, attrs: &str, rename_all: Option<&str>) -> Option<Field> {
    let text = text.trim().trim_end_matches(',');
    let text = text
        .strip_prefix("pub(crate) ")
        .or_else(|| text.strip_prefix("pub(super) "))
        .or_else(|| text.strip_prefix("pub "))
        .unwrap_or(text);
    let (name, ty) = text.split_once(':')?;
    let name = name.trim().trim_start_matches("r#");
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let serde: String = attrs
        .split("#[")
        .filter(|a| a.starts_with("serde"))
        .collect();
    if has_word(&serde, "skip") || has_word(&serde, "skip_deserializing") {
        return None;
    }
    let key = serde_attr_value(&serde, "rename")
        .map(str::to_string)
        .unwrap_or_else(|| apply_rename_all(name, rename_all));
    Some(Field {
        key,
        ty: ty.trim().to_string(),
        flatten: has_word(&serde, "flatten"),
    })
}

/// Every deserialized struct under `src/`, by name (a name may be defined in
/// several files).
fn load_structs(root: &Path) -> BTreeMap<String, Vec<RustStruct>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    let mut by_name: BTreeMap<String, Vec<RustStruct>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        for s in parse_structs(&rel, &text) {
            by_name.entry(s.name.clone()).or_default().push(s);
        }
    }
    by_name
}

/// The struct a type refers to, if any: the same file's definition first,
/// then the one whose module path matches the qualifier (`crate::alerts::X`
/// -> src/alerts.rs or src/alerts/...), then the only one.
fn resolve<'a>(
    ty: &str,
    from_file: &str,
    structs: &'a BTreeMap<String, Vec<RustStruct>>,
) -> Option<&'a RustStruct> {
    let tokens: Vec<&str> = ty
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| !t.is_empty())
        .collect();
    for token in tokens {
        let segments: Vec<&str> = token.split("::").filter(|s| !s.is_empty()).collect();
        let Some(name) = segments.last() else {
            continue;
        };
        let Some(defs) = structs.get(*name) else {
            continue;
        };
        if let Some(s) = defs.iter().find(|s| s.file == from_file) {
            return Some(s);
        }
        let module = segments.len().checked_sub(2).map(|i| segments[i]);
        if let Some(m) = module {
            if let Some(s) = defs
                .iter()
                .find(|s| s.file == format!("src/{m}.rs") || s.file.contains(&format!("/{m}/")))
            {
                return Some(s);
            }
        }
        assert!(
            defs.len() == 1,
            "type `{ty}` in {from_file}: `{name}` is defined in several files ({:?}); qualify it",
            defs.iter().map(|d| &d.file).collect::<Vec<_>>()
        );
        return Some(&defs[0]);
    }
    None
}

/// One config key: the tables it is in and its own name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    tables: Vec<String>,
    name: String,
}

impl Key {
    fn dotted(&self) -> String {
        let mut v = self.tables.clone();
        v.push(self.name.clone());
        v.join(".")
    }
}

/// Every key reachable from `ROOT`.
fn code_keys(structs: &BTreeMap<String, Vec<RustStruct>>) -> BTreeSet<Key> {
    fn walk(
        s: &RustStruct,
        tables: &[String],
        structs: &BTreeMap<String, Vec<RustStruct>>,
        seen: &mut Vec<String>,
        out: &mut BTreeSet<Key>,
    ) {
        assert!(
            !seen.contains(&s.name),
            "recursive config struct {} via {seen:?}",
            s.name
        );
        seen.push(s.name.clone());
        for f in &s.fields {
            match resolve(&f.ty, &s.file, structs) {
                Some(child) if f.flatten => walk(child, tables, structs, seen, out),
                Some(child) => {
                    let mut t = tables.to_vec();
                    t.push(f.key.clone());
                    walk(child, &t, structs, seen, out);
                }
                None => {
                    out.insert(Key {
                        tables: tables.to_vec(),
                        name: f.key.clone(),
                    });
                }
            }
        }
        seen.pop();
    }
    let root = structs
        .get(ROOT.0)
        .and_then(|defs| defs.iter().find(|d| d.file == ROOT.1))
        .unwrap_or_else(|| panic!("struct {} not found in {}", ROOT.0, ROOT.1));
    let mut out = BTreeSet::new();
    walk(root, &[], structs, &mut Vec::new(), &mut out);
    out
}

// ---------------------------------------------------------------------------
// docs/config.md
// ---------------------------------------------------------------------------

/// The `[table]` / `[[table]]` names a heading mentions.
fn heading_tables(heading: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = heading;
    while let Some(p) = rest.find('[') {
        let after = rest[p..].trim_start_matches('[');
        let end = after.find(']').unwrap_or(after.len());
        let name = &after[..end];
        if !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-')
        {
            out.push(name.to_string());
        }
        rest = &after[end..];
    }
    out
}

/// Sections of a markdown text: (the tables they are about, text).
fn doc_sections(text: &str) -> Vec<(Vec<String>, String)> {
    let mut out: Vec<(Vec<String>, String)> = vec![(Vec::new(), String::new())];
    // (heading level, tables) of the innermost heading that named tables.
    let mut current: Option<(usize, Vec<String>)> = None;
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        if !in_code && level > 0 && line[level..].starts_with(' ') {
            let tables = heading_tables(line);
            if !tables.is_empty() {
                current = Some((level, tables));
            } else if current.as_ref().is_some_and(|(l, _)| *l >= level) {
                current = None;
            }
            let tables = current.as_ref().map(|(_, t)| t.clone()).unwrap_or_default();
            out.push((tables, String::new()));
        }
        let last = out.last_mut().unwrap();
        last.1.push_str(line);
        last.1.push('\n');
    }
    out
}

/// `` `token` ``, `` `token = ...` `` or `` `token ...` `` in `text`.
fn mentions(text: &str, token: &str) -> bool {
    let needle = format!("`{token}");
    text.match_indices(&needle).any(|(p, _)| {
        matches!(
            text[p + needle.len()..].chars().next(),
            Some('`') | Some(' ') | Some('=')
        )
    })
}

fn documented_in_md(key: &Key, sections: &[(Vec<String>, String)]) -> bool {
    // Split the path between a section's table and the token written in it.
    (0..=key.tables.len()).any(|i| {
        let table = key.tables[..i].join(".");
        let mut token: Vec<String> = key.tables[i..].to_vec();
        token.push(key.name.clone());
        let token = token.join(".");
        sections.iter().any(|(tables, text)| {
            let here = if table.is_empty() {
                tables.is_empty()
            } else {
                tables.contains(&table)
            };
            here && mentions(text, &token)
        })
    })
}

// ---------------------------------------------------------------------------
// config/raftinel.example.toml
// ---------------------------------------------------------------------------

fn is_bare_key(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !s.starts_with('.')
        && !s.ends_with('.')
}

/// Every dotted key the example mentions (commented out or not), with its line.
fn example_keys(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut table = String::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim_start().trim_start_matches('#').trim();
        if let Some(inner) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let inner = inner.trim_start_matches('[').trim_end_matches(']').trim();
            if is_bare_key(inner) {
                table = inner.to_string();
                continue;
            }
        }
        let Some((k, _)) = l.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if !is_bare_key(k) {
            continue;
        }
        let full = if table.is_empty() {
            k.to_string()
        } else {
            format!("{table}.{k}")
        };
        out.entry(full).or_insert(n + 1);
    }
    out
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

fn keys_of_the_code() -> BTreeSet<Key> {
    let keys = code_keys(&load_structs(&repo()));
    // The walk must still see the keys everyone knows about, or the parser
    // above has rotted and would pass anything.
    let dotted: BTreeSet<String> = keys.iter().map(Key::dotted).collect();
    for known in [
        "node_id",
        "peer_secret_file",
        "raft.tick_ms",
        "redis.password_env",
        "discovery.listen",
        "peer.addr",
        "group.name",
        "group.password_file",
    ] {
        assert!(
            dotted.contains(known),
            "the key walk from {} no longer finds `{known}`; found: {dotted:#?}",
            ROOT.0
        );
    }
    keys
}

#[test]
fn every_config_key_is_documented_in_the_reference_and_the_example() {
    let keys = keys_of_the_code();
    let md_path = repo().join("docs/config.md");
    let md = std::fs::read_to_string(&md_path).expect("read docs/config.md");
    let sections = doc_sections(&md);
    let example = example_keys(
        &std::fs::read_to_string(repo().join("config/raftinel.example.toml")).unwrap(),
    );

    let mut missing_md = Vec::new();
    let mut missing_example = Vec::new();
    for k in &keys {
        if !documented_in_md(k, &sections) {
            missing_md.push(k.dotted());
        }
        if !example.contains_key(&k.dotted()) {
            missing_example.push(k.dotted());
        }
    }
    let mut report = String::new();
    if !missing_md.is_empty() {
        report.push_str(&format!(
            "not documented in docs/config.md (as `key` in the table's section):\n  {}\n",
            missing_md.join("\n  ")
        ));
    }
    if !missing_example.is_empty() {
        report.push_str(&format!(
            "not in config/raftinel.example.toml (as `key = ...`, commented or not, under the table's header):\n  {}\n",
            missing_example.join("\n  ")
        ));
    }
    assert!(
        report.is_empty(),
        "{} config keys found in the code.\n{report}",
        keys.len()
    );
}

#[test]
fn the_example_lists_no_key_the_code_does_not_accept() {
    let keys: BTreeSet<String> = keys_of_the_code().iter().map(Key::dotted).collect();
    let example = example_keys(
        &std::fs::read_to_string(repo().join("config/raftinel.example.toml")).unwrap(),
    );
    let stale: Vec<String> = example
        .iter()
        .filter(|(k, _)| !keys.contains(*k))
        .map(|(k, line)| format!("line {line}: {k}"))
        .collect();
    assert!(
        stale.is_empty(),
        "config/raftinel.example.toml has keys the code does not accept:\n  {}",
        stale.join("\n  ")
    );
}

// The parsers themselves, on small inputs.

#[test]
fn struct_parser_handles_serde_attributes() {
    let src = r#"
/// Doc.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTop {
    name: Spanned<String>,
    /// A doc comment with a: colon.
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    #[serde(default)]
    sub: Option<RawSub>, // trailing comment
    #[serde(default)]
    list: Vec<Spanned<RawSub>>,
    #[serde(flatten)]
    common: RawCommon,
    #[serde(skip)]
    cache: u8,
    #[serde(
        default,
        rename = "multi-line"
    )]
    multi: Option<
        u64,
    >,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawSub {
    for_ms: u64,
}

#[derive(Deserialize)]
struct RawCommon {
    shared: bool,
}

struct NotDeserialized {
    x: u8,
}
"#;
    let mut structs: BTreeMap<String, Vec<RustStruct>> = BTreeMap::new();
    for s in parse_structs("src/x.rs", src) {
        structs.entry(s.name.clone()).or_default().push(s);
    }
    assert_eq!(
        structs.keys().collect::<Vec<_>>(),
        ["RawCommon", "RawSub", "RawTop"]
    );
    let top = &structs["RawTop"][0];
    let names: Vec<&str> = top.fields.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        names,
        ["name", "type", "sub", "list", "common", "multi-line"]
    );
    let mut walked = BTreeSet::new();
    // Walk from RawTop as if it were the root.
    fn walk(
        s: &RustStruct,
        t: &[String],
        all: &BTreeMap<String, Vec<RustStruct>>,
        out: &mut BTreeSet<String>,
    ) {
        for f in &s.fields {
            match resolve(&f.ty, &s.file, all) {
                Some(c) if f.flatten => walk(c, t, all, out),
                Some(c) => {
                    let mut t = t.to_vec();
                    t.push(f.key.clone());
                    walk(c, &t, all, out);
                }
                None => {
                    let mut t = t.to_vec();
                    t.push(f.key.clone());
                    out.insert(t.join("."));
                }
            }
        }
    }
    walk(top, &[], &structs, &mut walked);
    assert_eq!(
        walked.into_iter().collect::<Vec<_>>(),
        [
            "list.for-ms",
            "multi-line",
            "name",
            "shared",
            "sub.for-ms",
            "type"
        ]
    );
}

#[test]
fn markdown_sections_follow_their_headings() {
    let md = "intro\n## Top level\n| `node_id` | x |\n## `[raft]` (optional)\n| `tick_ms` |\n### Details\n`election_ticks = 3`\n## `[alerts]`\n`memory.percent`\n## Errors\n`tick_ms_typo`\n";
    let sections = doc_sections(md);
    let key = |t: &[&str], n: &str| Key {
        tables: t.iter().map(|s| s.to_string()).collect(),
        name: n.to_string(),
    };
    assert!(documented_in_md(&key(&[], "node_id"), &sections));
    assert!(documented_in_md(&key(&["raft"], "tick_ms"), &sections));
    assert!(documented_in_md(
        &key(&["raft"], "election_ticks"),
        &sections
    ));
    assert!(documented_in_md(
        &key(&["alerts", "memory"], "percent"),
        &sections
    ));
    assert!(!documented_in_md(&key(&[], "tick_ms"), &sections));
    assert!(!documented_in_md(
        &key(&["raft"], "heartbeat_ticks"),
        &sections
    ));
    assert!(!documented_in_md(&key(&["raft"], "tick"), &sections));
}

#[test]
fn example_keys_include_commented_ones_under_their_table() {
    let toml = "# top\nnode_id = 1\n# peer_secret_env = \"X\"\n#   peer_secret_file = \"/f\"  a file\n[raft]\ntick_ms = 100\n# [alerts.memory]\n# percent = 80\n[alerts]\nops.max = 3\n# Prose with = but not a key line.\n[[group]]\nname = \"g\"\n";
    let keys: Vec<String> = example_keys(toml).into_keys().collect();
    assert_eq!(
        keys,
        [
            "alerts.memory.percent",
            "alerts.ops.max",
            "group.name",
            "node_id",
            "peer_secret_env",
            "peer_secret_file",
            "raft.tick_ms",
        ]
    );
}
