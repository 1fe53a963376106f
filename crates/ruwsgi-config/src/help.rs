//! Text the binary prints instead of running: `--help`, `--version` and `--show-config`.
//!
//! `--help` is generated from [`crate::defs::OPTIONS`], so an option cannot exist without
//! being documented; options ruwsgi does not implement yet are listed by name at the end so
//! that operators migrating from uWSGI see at once what is missing.

use std::fmt::Write as _;

use crate::defs::{Category, Status, OPTIONS};
use crate::settings::OptValue;

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

/// The `--show-config` text: the collected options as one `[uwsgi]` ini section.
///
/// Loader options (`ini = x.ini`, ...) are written as comments because the file's contents
/// follow them inline; feeding the output back in gives the same options.
pub fn show_config_text(opt: &[(String, OptValue)]) -> String {
    let mut out = String::from("[uwsgi]\n");
    for (key, value) in opt {
        let def = crate::defs::lookup(key);
        if def.is_some_and(|d| d.name == "show-config") {
            continue;
        }
        let value = match value {
            OptValue::Flag => "true",
            OptValue::Value(v) => v.as_str(),
        };
        let loader = def.is_some_and(|d| d.kind == crate::defs::Kind::Config);
        let prefix = if loader { "; " } else { "" };
        let _ = writeln!(out, "{prefix}{key} = {value}");
    }
    out
}
