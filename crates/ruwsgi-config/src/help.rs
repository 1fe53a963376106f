//! Text the binary prints instead of running: `--help`, `--version` and `--show-config`.
//!
//! `--help` is generated from [`crate::defs::OPTIONS`], so an option cannot exist without
//! being documented; options ruwsgi does not implement yet are listed by name at the end so
//! that operators migrating from uWSGI see at once what is missing.

use std::fmt::Write as _;

use crate::defs::{near_option, Category, Kind, Status, OPTIONS};
use crate::lowargs::{RawKind, RawOpt};

/// Width of the option column in `--help`.
const COLUMN: usize = 44;

/// The `--help` text.
pub fn help_text() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ruwsgi {} - an application server implementing the uWSGI API {}\n",
        crate::VERSION,
        crate::UWSGI_API_VERSION
    );
    out.push_str(
        "Usage: ruwsgi [OPTIONS] [FILE.ini|.yaml|.json|.toml | APP.py | pkg.mod:callable]...\n",
    );
    out.push_str("Options come from UWSGI_* environment variables, the command line and config\n");
    out.push_str("files, in that order; the last value wins, list options accumulate.\n");
    for category in Category::ALL {
        let defs: Vec<_> = OPTIONS
            .iter()
            .filter(|d| d.category == category && d.status == Status::Supported)
            .collect();
        if defs.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}:", category.title());
        if let Some(note) = category.note() {
            for line in note.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        for d in defs {
            let mut left = String::from("  ");
            match d.short {
                Some(c) => {
                    let _ = write!(left, "-{c}, ");
                }
                None => left.push_str("    "),
            }
            let _ = write!(left, "--{}", d.name);
            for alias in d.aliases {
                let _ = write!(left, ", --{alias}");
            }
            let metavar = d.kind.metavar();
            if !metavar.is_empty() {
                let _ = write!(left, " {metavar}");
            }
            let mut line = if left.len() + 2 > COLUMN {
                format!("{left}\n{:COLUMN$}", "")
            } else {
                format!("{left:COLUMN$}")
            };
            line.push_str(d.help);
            if !d.default.is_empty() {
                let _ = write!(line, " [default: {}]", d.default);
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out.push_str("\nuWSGI options not implemented yet (using one is an error):\n");
    let mut line = String::from(" ");
    for d in OPTIONS.iter().filter(|d| d.status == Status::NotYet) {
        if line.len() + d.name.len() + 1 > 88 {
            out.push_str(&line);
            out.push('\n');
            line = String::from(" ");
        }
        line.push(' ');
        line.push_str(d.name);
    }
    out.push_str(&line);
    out.push('\n');
    out.push_str(
        "Every other uWSGI option (its core and plugins) is refused the same way; a config-file\n\
         key that is no uWSGI option is kept for uwsgi.opt and logged as a custom option.\n\
         README.md (\"uWSGI options ruwsgi does not have yet\") says when each one comes.\n",
    );
    out
}

/// The `--version` text.
pub fn version_text() -> String {
    format!(
        "ruwsgi {} (uWSGI API {})",
        crate::VERSION,
        crate::UWSGI_API_VERSION
    )
}

/// The `--show-config` text: every collected option as it will be used, as one `[uwsgi]`
/// ini section that `--ini` loads back to the same settings.
///
/// Values are shown after every substitution (`%d`, `$(ENV)`, `@(file)`, `%(name)`), so the
/// lines that only existed to feed substitutions change shape:
/// - `set`/`set-placeholder` lines are dropped and their effect is written instead: an
///   option set by `set` as that option, a placeholder as `set-placeholder = key=value`;
/// - custom keys stay `key = value`, except those whose name is close to an option's (kept
///   only because the configuration used them as `%(key)`): they become `set-placeholder`
///   lines, since nothing refers to them any more and reading them back would be an error;
/// - loader options (`ini = x.ini`, ...) are comments, because the file's options follow;
/// - a `%` that the ini reader would take for a magic variable is doubled.
pub fn show_config_text(opts: &[RawOpt]) -> String {
    let mut out = String::from("[uwsgi]\n");
    for opt in opts {
        let key = opt.key.as_str();
        let value = opt.value.as_deref().map(escape_magic);
        let as_placeholder = match opt.kind {
            RawKind::Option(def) if def.kind == Kind::Assign || def.name == "show-config" => {
                continue
            }
            RawKind::Option(_) => false,
            RawKind::Custom => near_option(key).is_some(),
            RawKind::Placeholder => true,
        };
        let line = match (opt.def(), value.as_deref()) {
            (_, v) if as_placeholder => format!("set-placeholder = {key}={}", v.unwrap_or("")),
            (Some(def), Some(v)) if def.kind == Kind::Config => format!("; {key} = {v}"),
            (Some(def), None) if matches!(def.kind, Kind::Flag | Kind::Switch | Kind::OptText) => {
                format!("{key} = true")
            }
            // A bare key reads back as an empty value (`chmod-socket` alone means 0666).
            (_, None | Some("")) => key.to_string(),
            (_, Some(v)) => format!("{key} = {v}"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Doubles every `%` that the ini reader would expand as a magic variable (`%d`, `%%`, ...);
/// `%(` is left alone: a resolved value only still contains one when nothing defines it.
fn escape_magic(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' && chars.peek().is_some_and(|n| *n != '(') {
            out.push('%');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_escapes() {
        assert_eq!(escape_magic("100%d %% %(x) %"), "100%%d %%%% %(x) %");
        assert_eq!(escape_magic("plain"), "plain");
    }
}
