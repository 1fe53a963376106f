//! A minimal JSON value and its two layouts: uWSGI's (one member per line, tab-indented,
//! no space after the colon) and minified (`stats-minified`).
//!
//! The stats document is a few kilobytes built once per connection in the master, so a
//! small owned tree is simpler than a streaming writer and keeps the key order explicit.

use std::fmt::Write as _;

/// A JSON value. Object members keep their insertion order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    /// A string (invalid UTF-8 was replaced before it got here).
    Str(String),
    /// A non-negative integer.
    UInt(u64),
    /// An integer.
    Int(i64),
    /// A list.
    Arr(Vec<Json>),
    /// An object.
    Obj(Vec<(String, Json)>),
}

/// Builds an object member by member.
#[derive(Debug, Default)]
pub(crate) struct Obj(Vec<(String, Json)>);

impl Obj {
    pub(crate) fn new() -> Obj {
        Obj::default()
    }

    pub(crate) fn set(mut self, key: &str, value: impl Into<Json>) -> Obj {
        self.0.push((key.to_string(), value.into()));
        self
    }

    pub(crate) fn push(&mut self, key: &str, value: impl Into<Json>) {
        self.0.push((key.to_string(), value.into()));
    }
}

impl From<Obj> for Json {
    fn from(o: Obj) -> Json {
        Json::Obj(o.0)
    }
}
impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_string())
    }
}
impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}
impl From<u64> for Json {
    fn from(n: u64) -> Json {
        Json::UInt(n)
    }
}
impl From<u32> for Json {
    fn from(n: u32) -> Json {
        Json::UInt(u64::from(n))
    }
}
impl From<usize> for Json {
    fn from(n: usize) -> Json {
        Json::UInt(n as u64)
    }
}
impl From<i32> for Json {
    fn from(n: i32) -> Json {
        Json::Int(i64::from(n))
    }
}
impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::UInt(u64::from(b))
    }
}
impl From<Vec<Json>> for Json {
    fn from(v: Vec<Json>) -> Json {
        Json::Arr(v)
    }
}

impl Json {
    /// The text: tab-indented like uWSGI's, or on one line when `minified`.
    pub(crate) fn render(&self, minified: bool) -> String {
        let mut out = String::with_capacity(4096);
        self.write(&mut out, if minified { None } else { Some(0) });
        if !minified {
            out.push('\n');
        }
        out
    }

    /// `indent`: `None` minified, `Some(depth)` pretty at that depth.
    fn write(&self, out: &mut String, indent: Option<usize>) {
        match self {
            Json::Str(s) => escape(out, s),
            Json::UInt(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent.map(|d| d + 1));
                    item.write(out, indent.map(|d| d + 1));
                }
                if !items.is_empty() {
                    newline(out, indent);
                }
                out.push(']');
            }
            Json::Obj(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, indent.map(|d| d + 1));
                    escape(out, key);
                    out.push(':');
                    value.write(out, indent.map(|d| d + 1));
                }
                if !members.is_empty() {
                    newline(out, indent);
                }
                out.push('}');
            }
        }
    }
}

fn newline(out: &mut String, indent: Option<usize>) {
    if let Some(depth) = indent {
        out.push('\n');
        for _ in 0..depth {
            out.push('\t');
        }
    }
}

fn escape(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Json {
        Obj::new()
            .set("a", "x\"y\\z\n\u{1}é")
            .set("n", 3u64)
            .set("neg", -2)
            .set("empty", Vec::<Json>::new())
            .set(
                "list",
                vec![Json::from(1u64), Obj::new().set("k", 0u64).into()],
            )
            .set("o", Obj::new())
            .into()
    }

    #[test]
    fn minified_and_pretty() {
        let j = sample();
        assert_eq!(
            j.render(true),
            r#"{"a":"x\"y\\z\n\u0001é","n":3,"neg":-2,"empty":[],"list":[1,{"k":0}],"o":{}}"#
        );
        let pretty = j.render(false);
        assert!(pretty.starts_with("{\n\t\"a\":\"x"), "{pretty}");
        assert!(pretty.contains("\n\t\"list\":[\n\t\t1,\n\t\t{\n\t\t\t\"k\":0\n\t\t}\n\t],"));
        assert!(pretty.ends_with("\n}\n"));
    }
}
