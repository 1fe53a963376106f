//! Config file formats: ini, YAML (a small subset), JSON and TOML, all reduced to one
//! ordered list of `key = value` [`Entry`]s from the requested section.
//!
//! Parsers here know nothing about options: a value is always a string (JSON/TOML scalars
//! are converted the way uWSGI does, `true` → `"1"`), a list becomes repeated entries, and
//! substitutions are applied later by the caller. The YAML parser is hand-written on purpose:
//! uWSGI users write flat `uwsgi:` mappings with an occasional `- item` list, and a full YAML
//! implementation would accept far more than uWSGI ever did.

/// The formats a config file can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `[section]` + `key = value` lines.
    Ini,
    /// A top-level `section:` mapping.
    Yaml,
    /// A top-level object with a `section` key.
    Json,
    /// A `[section]` table.
    Toml,
}

impl Format {
    /// The format a loader option reads (`ini`, `yaml`, ...), by canonical name.
    pub fn for_option(name: &str) -> Option<Format> {
        match name {
            "ini" => Some(Format::Ini),
            "yaml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }

    /// The format of a file judged by its extension (for bare command-line arguments).
    pub fn for_path(path: &str) -> Option<Format> {
        let ext = path.rsplit_once('.')?.1;
        match ext {
            "ini" => Some(Format::Ini),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" | "js" => Some(Format::Json),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }

    /// The canonical loader option for this format.
    pub fn option_name(self) -> &'static str {
        match self {
            Format::Ini => "ini",
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Toml => "toml",
        }
    }
}

/// One `key = value` from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key as written.
    pub key: String,
    /// The value as written (quotes removed), before substitution.
    pub value: String,
    /// The 1-based line, when the format gives one.
    pub line: Option<usize>,
}

/// The result of parsing one file.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Entries of the requested section, in order.
    pub entries: Vec<Entry>,
    /// Whether the requested section exists at all (a missing one is a warning).
    pub section_found: bool,
}

/// A syntax error: 1-based line when known, and a message.
#[derive(Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// The line.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

fn syntax(line: Option<usize>, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        line,
        message: message.into(),
    }
}

/// Parses `text` in `format` and returns the entries of `section`.
/// An entry with an empty name (`= value` in ini, `"": ...` elsewhere) is a syntax error.
pub fn parse(format: Format, text: &str, section: &str) -> Result<Parsed, SyntaxError> {
    let parsed = match format {
        Format::Ini => parse_ini(text, section),
        Format::Yaml => parse_yaml(text, section)?,
        Format::Json => parse_json(text, section)?,
        Format::Toml => parse_toml(text, section)?,
    };
    if let Some(empty) = parsed.entries.iter().find(|e| e.key.is_empty()) {
        return Err(syntax(empty.line, "an option with an empty name"));
    }
    Ok(parsed)
}

/// INI as uWSGI reads it: no inline comments, no quoting, split at the first `=`.
fn parse_ini(text: &str, section: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut current: Option<&str> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim_matches([' ', '\t', '\r']);
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.split(']').next().unwrap_or(rest).trim();
            current = Some(name);
            if name == section {
                out.section_found = true;
            }
            continue;
        }
        if current != Some(section) {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim_matches([' ', '\t']), v.trim_matches([' ', '\t'])),
            None => (line, ""),
        };
        out.entries.push(Entry {
            key: key.to_string(),
            value: value.to_string(),
            line: Some(i + 1),
        });
    }
    out
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Removes a ` #` comment that is not inside quotes.
fn strip_yaml_comment(s: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'') && prev_space => quote = Some(c),
            None if c == '#' && prev_space => return s[..i].trim_end(),
            None => {}
        }
        prev_space = c == ' ' || c == '\t';
    }
    s.trim_end()
}

/// Unquotes one YAML scalar: `"..."` with backslash escapes, `'...'` with `''`, or plain.
fn yaml_scalar(s: &str, line: usize) -> Result<String, SyntaxError> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| syntax(Some(line), "unterminated double-quoted string"))?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                Some(c @ ('\\' | '"' | '/' | ' ')) => out.push(c),
                Some(c) => return Err(syntax(Some(line), format!("unknown escape '\\{c}'"))),
                None => return Err(syntax(Some(line), "backslash at end of string")),
            }
        }
        Ok(out)
    } else if let Some(inner) = s.strip_prefix('\'') {
        let inner = inner
            .strip_suffix('\'')
            .ok_or_else(|| syntax(Some(line), "unterminated single-quoted string"))?;
        Ok(inner.replace("''", "'"))
    } else {
        Ok(s.to_string())
    }
}

/// Splits a flow sequence body `a, "b, c", d` at top-level commas.
fn split_flow(body: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == ',' => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            None => {}
        }
    }
    parts.push(&body[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

/// Splits `key: value` (or `key:`) at the first `:` followed by a space or the end.
fn split_yaml_key(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' ' || bytes[i + 1] == b'\t') {
            return Some((s[..i].trim(), s[i + 1..].trim()));
        }
    }
    None
}

/// The YAML subset: a top-level `section:` mapping of scalars and block or flow lists.
fn parse_yaml(text: &str, section: &str) -> Result<Parsed, SyntaxError> {
    let mut out = Parsed::default();
    let mut in_section = false;
    let mut body_indent: Option<usize> = None;
    // The key whose value was empty, waiting for `- item` lines: (key, line, indent, items).
    let mut pending: Option<(String, usize, usize, usize)> = None;

    let flush = |pending: &mut Option<(String, usize, usize, usize)>, out: &mut Parsed| {
        if let Some((key, line, _, 0)) = pending.take() {
            out.entries.push(Entry {
                key,
                value: String::new(),
                line: Some(line),
            });
        }
    };

    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        let raw = raw.trim_end_matches('\r');
        if raw.contains('\t') && raw.trim_start_matches(' ').starts_with('\t') {
            return Err(syntax(Some(n), "tabs are not allowed for indentation"));
        }
        let content = strip_yaml_comment(raw);
        let trimmed = content.trim();
        if trimmed.is_empty() || trimmed == "---" || trimmed == "..." {
            continue;
        }
        let indent = indent_of(content);
        if indent == 0 {
            flush(&mut pending, &mut out);
            let Some((key, rest)) = split_yaml_key(trimmed) else {
                return Err(syntax(Some(n), "expected 'key:' at the top level"));
            };
            in_section = yaml_scalar(key, n)? == section;
            if in_section {
                out.section_found = true;
                body_indent = None;
                if !rest.is_empty() {
                    return Err(syntax(Some(n), format!("'{section}:' must be a mapping")));
                }
            }
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some(item) = trimmed
            .strip_prefix('-')
            .filter(|r| r.is_empty() || r.starts_with(' '))
        {
            let Some((key, _, key_indent, items)) = pending.as_mut() else {
                return Err(syntax(Some(n), "list item without a key"));
            };
            if indent < *key_indent {
                return Err(syntax(Some(n), "list item indented less than its key"));
            }
            *items += 1;
            out.entries.push(Entry {
                key: key.clone(),
                value: yaml_scalar(item, n)?,
                line: Some(n),
            });
            continue;
        }
        let expected = *body_indent.get_or_insert(indent);
        if indent != expected {
            return Err(syntax(Some(n), "nested mappings are not supported"));
        }
        flush(&mut pending, &mut out);
        let Some((key, rest)) = split_yaml_key(trimmed) else {
            return Err(syntax(Some(n), "expected 'key: value'"));
        };
        let key = yaml_scalar(key, n)?;
        if rest.is_empty() {
            pending = Some((key, n, indent, 0));
        } else if let Some(body) = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            for part in split_flow(body) {
                out.entries.push(Entry {
                    key: key.clone(),
                    value: yaml_scalar(part, n)?,
                    line: Some(n),
                });
            }
        } else {
            out.entries.push(Entry {
                key,
                value: yaml_scalar(rest, n)?,
                line: Some(n),
            });
        }
    }
    flush(&mut pending, &mut out);
    Ok(out)
}

fn json_scalar(key: &str, v: &serde_json::Value) -> Result<String, SyntaxError> {
    use serde_json::Value;
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(true) => Ok("1".to_string()),
        Value::Bool(false) | Value::Null => Ok("0".to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Array(_) | Value::Object(_) => Err(syntax(
            None,
            format!("value of '{key}' must be a string, number, boolean or list of them"),
        )),
    }
}

fn parse_json(text: &str, section: &str) -> Result<Parsed, SyntaxError> {
    let root: serde_json::Value =
        serde_json::from_str(text).map_err(|e| syntax(Some(e.line()), e.to_string()))?;
    let root = root
        .as_object()
        .ok_or_else(|| syntax(None, "the top level must be an object"))?;
    let mut out = Parsed::default();
    let Some(body) = root.get(section) else {
        return Ok(out);
    };
    out.section_found = true;
    let body = body
        .as_object()
        .ok_or_else(|| syntax(None, format!("'{section}' must be an object")))?;
    for (key, value) in body {
        let values = match value {
            serde_json::Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for v in values {
            out.entries.push(Entry {
                key: key.clone(),
                value: json_scalar(key, v)?,
                line: None,
            });
        }
    }
    Ok(out)
}

fn toml_scalar(key: &str, v: &toml::Value) -> Result<String, SyntaxError> {
    use toml::Value;
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Boolean(b) => Ok(if *b { "1" } else { "0" }.to_string()),
        Value::Integer(n) => Ok(n.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Datetime(d) => Ok(d.to_string()),
        Value::Array(_) | Value::Table(_) => Err(syntax(
            None,
            format!("value of '{key}' must be a string, number, boolean or list of them"),
        )),
    }
}

fn parse_toml(text: &str, section: &str) -> Result<Parsed, SyntaxError> {
    let root: toml::Table = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        syntax(line, e.message().to_string())
    })?;
    let mut out = Parsed::default();
    let Some(body) = root.get(section) else {
        return Ok(out);
    };
    out.section_found = true;
    let body = body
        .as_table()
        .ok_or_else(|| syntax(None, format!("'{section}' must be a table")))?;
    for (key, value) in body {
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            v => vec![v],
        };
        for v in values {
            out.entries.push(Entry {
                key: key.clone(),
                value: toml_scalar(key, v)?,
                line: None,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(p: &Parsed) -> Vec<(&str, &str)> {
        p.entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect()
    }

    #[test]
    fn ini_rules() {
        let text = "; c\n[other]\nx = 1\n[uwsgi]\n  socket = :3031 ; not a comment\r\n# c\n\
                    master\nenv = A=B=C\n\n[uwsgi]\nsocket=:3032\n";
        let p = parse(Format::Ini, text, "uwsgi").unwrap();
        assert!(p.section_found);
        assert_eq!(
            kv(&p),
            [
                ("socket", ":3031 ; not a comment"),
                ("master", ""),
                ("env", "A=B=C"),
                ("socket", ":3032")
            ]
        );
        assert_eq!(p.entries[1].line, Some(7));
        let p = parse(Format::Ini, text, "other").unwrap();
        assert_eq!(kv(&p), [("x", "1")]);
        assert!(!parse(Format::Ini, text, "nope").unwrap().section_found);
    }

    /// Found by the `config` fuzz target: an empty option name used to be kept as a custom
    /// option (and written back by `--show-config` as ` = x`).
    #[test]
    fn an_empty_option_name_is_a_syntax_error() {
        for (format, text, line) in [
            (Format::Ini, "[uwsgi]\nmaster = 1\n = x\n", Some(3)),
            (Format::Json, "{\"uwsgi\": {\"\": \"x\"}}", None),
            (Format::Toml, "[uwsgi]\n\"\" = \"x\"\n", None),
        ] {
            let e = parse(format, text, "uwsgi").unwrap_err();
            assert_eq!(e.message, "an option with an empty name", "{format:?}");
            if line.is_some() {
                assert_eq!(e.line, line);
            }
        }
    }

    #[test]
    fn yaml_subset() {
        let text = "# top\nother:\n  x: 1\nuwsgi:\n  socket: :3031  # comment\n  master: true\n\
                    \n  env:\n    - A=1\n    - \"B=#2\"\n  pythonpath:\n  - /a\n  lazy:\n  \
                    log-format: '%(addr) ''x'''\n  pp: [/b, \"/c,d\"]\nlast:\n  y: 2\n";
        let p = parse(Format::Yaml, text, "uwsgi").unwrap();
        assert_eq!(
            kv(&p),
            [
                ("socket", ":3031"),
                ("master", "true"),
                ("env", "A=1"),
                ("env", "B=#2"),
                ("pythonpath", "/a"),
                ("lazy", ""),
                ("log-format", "%(addr) 'x'"),
                ("pp", "/b"),
                ("pp", "/c,d"),
            ]
        );
        assert_eq!(p.entries[3].line, Some(10));
        let err = parse(Format::Yaml, "uwsgi:\n  a: 1\n    b: 2\n", "uwsgi").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(
            !parse(Format::Yaml, "x:\n  a: 1\n", "uwsgi")
                .unwrap()
                .section_found
        );
    }

    #[test]
    fn json_values() {
        let text = r#"{"uwsgi": {"socket": [":1", ":2"], "master": true, "vacuum": false,
                       "processes": 4, "x": null}}"#;
        let p = parse(Format::Json, text, "uwsgi").unwrap();
        assert_eq!(
            kv(&p),
            [
                ("socket", ":1"),
                ("socket", ":2"),
                ("master", "1"),
                ("vacuum", "0"),
                ("processes", "4"),
                ("x", "0")
            ]
        );
        assert!(parse(Format::Json, "{\"uwsgi\": {\"a\": {}}}", "uwsgi").is_err());
        assert_eq!(
            parse(Format::Json, "{\n\"uwsgi\"", "uwsgi")
                .unwrap_err()
                .line,
            Some(2)
        );
    }

    #[test]
    fn toml_values() {
        let text = "[uwsgi]\nsocket = [\":1\", \":2\"]\nmaster = true\nprocesses = 4\n\
                    chdir = \"/srv\"\n";
        let p = parse(Format::Toml, text, "uwsgi").unwrap();
        assert_eq!(
            kv(&p),
            [
                ("socket", ":1"),
                ("socket", ":2"),
                ("master", "1"),
                ("processes", "4"),
                ("chdir", "/srv")
            ]
        );
        assert_eq!(
            parse(Format::Toml, "a = \n", "uwsgi").unwrap_err().line,
            Some(1)
        );
    }

    #[test]
    fn format_detection() {
        assert_eq!(Format::for_path("a/b.yml"), Some(Format::Yaml));
        assert_eq!(Format::for_path("b.js"), Some(Format::Json));
        assert_eq!(Format::for_path("app.py"), None);
    }
}
