//! The raw layer: collect `(key, value, source)` triples from the environment, the command
//! line and config files, in the order uWSGI applies them.
//!
//! Nothing is validated here beyond recognising names: values stay strings. Config files are
//! read where they appear ("immediate", like uWSGI), so their options land in the middle of
//! the command-line ones, and `set` defines its placeholder at once. Substitution of `$()`,
//! `@()` and `%()` happens in [`Collector::finish`], after everything is collected, except for
//! the immediate options (config paths, `set`) which are expanded against what was collected
//! so far. Unknown names are an error on the command line; an unknown key in a file or in
//! `set key=value` is collected as [`RawKind::Custom`] and judged by [`crate::hiargs`].

use crate::uwsgi_names::is_uwsgi_option;
use std::collections::HashMap;
use std::path::PathBuf;

use crate::defs::{self, Arg, Kind, OptionDef, Status};
use crate::error::{ConfigError, Source};
use crate::formats::{self, Format};
use crate::subst::{self, FileCtx, Globals};

/// How deep config files may include each other.
pub const MAX_INCLUDE_DEPTH: usize = 10;

/// What a raw entry is.
#[derive(Debug, Clone, Copy)]
pub enum RawKind {
    /// A defined option.
    Option(&'static OptionDef),
    /// A name declared with `set-placeholder`: never an option, never judged.
    Placeholder,
    /// An unknown key in a config file or in `set key=value`: a value for the app (in
    /// `uwsgi.opt`) and for `%(key)`; [`crate::hiargs`] refuses it when its name is close to
    /// an option's, or under `strict`.
    Custom,
}

/// One collected option, as written.
#[derive(Debug, Clone)]
pub struct RawOpt {
    /// The key as written (the long name for a short flag, the derived name for env vars).
    pub key: String,
    /// The value; `None` for a bare command-line flag.
    pub value: Option<String>,
    /// Where it came from.
    pub at: Source,
    /// What it is.
    pub kind: RawKind,
    /// Whether substitutions were already applied (immediate options).
    expanded: bool,
}

impl RawOpt {
    /// The option definition, for [`RawKind::Option`].
    pub fn def(&self) -> Option<&'static OptionDef> {
        match self.kind {
            RawKind::Option(d) => Some(d),
            _ => None,
        }
    }

    /// A command-line option with a value, for unit tests of the high layer.
    #[cfg(test)]
    pub(crate) fn for_test(def: &'static OptionDef, value: &str) -> RawOpt {
        RawOpt {
            key: def.name.to_string(),
            value: Some(value.to_string()),
            at: Source::CommandLine { index: 1 },
            kind: RawKind::Option(def),
            expanded: true,
        }
    }
}

/// A command that stops collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// Everything collected.
#[derive(Debug, Default)]
pub struct Collected {
    /// Options and placeholders in order.
    pub opts: Vec<RawOpt>,
    /// Config files read, as given, first occurrence only.
    pub config_files: Vec<PathBuf>,
    /// Non-fatal problems (missing sections, ignored environment variables).
    pub warnings: Vec<String>,
    /// Set when `help`/`version` stopped collection.
    pub halt: Option<Halt>,
    /// Whether `show-config` was asked for.
    pub show_config: bool,
    /// Names used as `%(name)` anywhere in the configuration.
    pub referenced: std::collections::HashSet<String>,
}

/// Where a pushed key comes from, which decides what an unknown key means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A key that may name an option (a config file, the environment, the command line, the
    /// key of `set key=value`): an unknown one is [`RawKind::Custom`].
    Key,
    /// The key of `set-placeholder`: always a placeholder, never an option.
    Placeholder,
}

/// `UWSGI_*` variables that uWSGI uses internally and that are never options.
const INTERNAL_ENV: &[&str] = &[
    "RELOADS",
    "EMPEROR",
    "ORIGINAL_PROC_NAME",
    "VASSAL",
    "SHARED_SOCKET",
    "FD",
    "RUWSGI",
    "DEB_CONF",
];

/// Collects raw options from all sources.
pub struct Collector<'a> {
    env: &'a HashMap<String, String>,
    globals: Globals,
    out: Collected,
    /// Files being read, outermost first: (absolute path, section, path as given).
    stack: Vec<(PathBuf, String, String)>,
    /// The top-level config file, for upper-case magic variables.
    first: Option<FileCtx>,
    /// The last file read, for the `:section` shorthand.
    last_file: Option<String>,
}

impl<'a> Collector<'a> {
    /// A collector reading `env` for `$(VAR)` and `UWSGI_*` options.
    pub fn new(env: &'a HashMap<String, String>, globals: Globals) -> Self {
        Collector {
            env,
            globals,
            out: Collected::default(),
            stack: Vec::new(),
            first: None,
            last_file: None,
        }
    }

    /// Reads `UWSGI_FOO_BAR` variables as option `foo-bar`, sorted by name for determinism.
    ///
    /// Internal variables are skipped silently; other `UWSGI_*` variables that do not name
    /// an option are skipped with a warning (uWSGI would try them as options and fail).
    pub fn collect_env(&mut self, vars: &[(String, String)]) -> Result<(), ConfigError> {
        let mut vars: Vec<&(String, String)> = vars.iter().collect();
        vars.sort();
        for (var, value) in vars {
            let Some(rest) = var.strip_prefix("UWSGI_") else {
                continue;
            };
            if rest.is_empty() || INTERNAL_ENV.iter().any(|p| rest.starts_with(p)) {
                continue;
            }
            let name = rest.to_ascii_lowercase().replace('_', "-");
            if defs::lookup(&name).is_none() {
                self.out.warnings.push(format!(
                    "environment variable {var} ignored: '{name}' is not a ruwsgi option"
                ));
                continue;
            }
            let at = Source::Env { var: var.clone() };
            self.push(name, Some(value.clone()), at, Origin::Key)?;
            if self.out.halt.is_some() {
                break;
            }
        }
        Ok(())
    }

    /// Reads the command line (without argv\[0\]).
    pub fn collect_cli(&mut self, args: &[String]) -> Result<(), ConfigError> {
        let mut i = 0;
        let mut only_bare = false;
        while i < args.len() && self.out.halt.is_none() {
            let arg = &args[i];
            let index = i + 1;
            let at = Source::CommandLine { index };
            i += 1;
            if only_bare || arg == "-" || !arg.starts_with('-') {
                self.bare(arg, index)?;
            } else if arg == "--" {
                only_bare = true;
            } else if let Some(long) = arg.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let def = cli_def(defs::lookup(name), &format!("--{name}"), &at)?;
                let value = match (def.kind.arg(), inline) {
                    (_, Some(v)) => Some(v),
                    (Arg::None, None) => None,
                    (Arg::Optional, None) => take_if(args, &mut i, def.kind),
                    (Arg::Required, None) => Some(take_required(args, &mut i, name, &at)?),
                };
                self.push(name.to_string(), value, at, Origin::Key)?;
            } else {
                let shorts: Vec<char> = arg[1..].chars().collect();
                let mut j = 0;
                while j < shorts.len() && self.out.halt.is_none() {
                    let c = shorts[j];
                    j += 1;
                    let def = cli_def(defs::lookup_short(c), &format!("-{c}"), &at)?;
                    let rest: String = shorts[j..].iter().collect();
                    let value = match def.kind.arg() {
                        Arg::None => None,
                        _ if !rest.is_empty() => {
                            j = shorts.len();
                            Some(rest)
                        }
                        Arg::Optional => take_if(args, &mut i, def.kind),
                        Arg::Required => Some(take_required(args, &mut i, def.name, &at)?),
                    };
                    self.push(def.name.to_string(), value, at.clone(), Origin::Key)?;
                }
            }
        }
        Ok(())
    }

    /// A bare argument: a config file by extension, a script, or `pkg.mod:callable`.
    fn bare(&mut self, arg: &str, index: usize) -> Result<(), ConfigError> {
        let at = Source::CommandLine { index };
        let (path, _) = self.split_section(arg);
        let option = if arg == "-" {
            return Err(ConfigError::Stdin { at });
        } else if let Some(format) = Format::for_path(&path) {
            format.option_name()
        } else if arg.ends_with(".py") || arg.ends_with(".wsgi") {
            "wsgi-file"
        } else if looks_like_module(arg) {
            "module"
        } else {
            return Err(ConfigError::UnknownArgument {
                arg: arg.to_string(),
                index,
            });
        };
        self.push(option.to_string(), Some(arg.to_string()), at, Origin::Key)
    }

    /// Adds one option and performs its immediate effect.
    fn push(
        &mut self,
        key: String,
        value: Option<String>,
        at: Source,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        let def = match origin {
            Origin::Placeholder => None,
            _ => defs::lookup(&key),
        };
        let Some(def) = def else {
            if origin == Origin::Key && is_uwsgi_option(&key) {
                return Err(ConfigError::NotImplemented { name: key, at });
            }
            let kind = match origin {
                Origin::Key => RawKind::Custom,
                Origin::Placeholder => RawKind::Placeholder,
            };
            self.record(key, value, at, kind, false);
            return Ok(());
        };
        if def.status == Status::NotYet {
            return Err(ConfigError::NotImplemented { name: key, at });
        }
        match def.kind {
            Kind::Command => {
                match def.name {
                    "help" => self.out.halt = Some(Halt::Help),
                    "version" => self.out.halt = Some(Halt::Version),
                    _ => self.out.show_config = true,
                }
                self.record(key, value, at, RawKind::Option(def), false);
            }
            Kind::Config => {
                let Some(value) = value.filter(|v| !v.is_empty()) else {
                    return Err(ConfigError::MissingValue { name: key, at });
                };
                let value = self.expand_now(&value, &at)?;
                self.record(
                    key,
                    Some(value.clone()),
                    at.clone(),
                    RawKind::Option(def),
                    true,
                );
                self.load_file(def.name, &value, at)?;
            }
            Kind::Assign => {
                let Some(value) = value else {
                    return Err(ConfigError::MissingValue { name: key, at });
                };
                let value = self.expand_now(&value, &at)?;
                let Some((k, v)) = value.split_once('=') else {
                    return Err(ConfigError::InvalidValue {
                        name: key,
                        value,
                        at,
                        expected: "KEY=VALUE".to_string(),
                    });
                };
                let (k, v) = (k.trim().to_string(), v.trim().to_string());
                let inner = if def.name == "set" {
                    Origin::Key
                } else {
                    Origin::Placeholder
                };
                self.record(
                    key,
                    Some(value.clone()),
                    at.clone(),
                    RawKind::Option(def),
                    true,
                );
                self.push(k, Some(v), at, inner)?;
            }
            _ => self.record(key, value, at, RawKind::Option(def), false),
        }
        Ok(())
    }

    fn record(
        &mut self,
        key: String,
        value: Option<String>,
        at: Source,
        kind: RawKind,
        expanded: bool,
    ) {
        self.out.opts.push(RawOpt {
            key,
            value,
            at,
            kind,
            expanded,
        });
    }

    /// All substitutions against what has been collected so far (for immediate options).
    fn expand_now(&mut self, value: &str, at: &Source) -> Result<String, ConfigError> {
        note_references(&mut self.out.referenced, value);
        expand_value(value, self.env, &self.out.opts, at)
    }

    /// Splits `file:section`; a path that exists as written is never split, and an empty
    /// file part means the previous file.
    fn split_section(&self, spec: &str) -> (String, Option<String>) {
        if self.globals.cwd.join(spec).exists() {
            return (spec.to_string(), None);
        }
        match spec.rsplit_once(':') {
            Some((file, section)) if !section.contains('/') => {
                let file = match (file.is_empty(), &self.last_file) {
                    (true, Some(last)) => last.clone(),
                    _ => file.to_string(),
                };
                (file, Some(section.to_string()))
            }
            _ => (spec.to_string(), None),
        }
    }

    /// Reads one config file (loader option `option`) and collects its entries in place.
    fn load_file(&mut self, option: &str, spec: &str, at: Source) -> Result<(), ConfigError> {
        if spec == "-" {
            return Err(ConfigError::Stdin { at });
        }
        let format = Format::for_option(option).unwrap_or(Format::Ini);
        let (path, section) = self.split_section(spec);
        let section_name = section.clone().unwrap_or_else(|| "uwsgi".to_string());
        let ctx = FileCtx::new(&path, section.as_deref(), &self.globals.cwd);
        let shown = |p: &str, s: &str| format!("{p}:{s}");
        if self
            .stack
            .iter()
            .any(|(abs, sec, _)| *abs == ctx.abs && *sec == section_name)
        {
            let mut chain: Vec<String> = self.stack.iter().map(|(_, s, p)| shown(p, s)).collect();
            chain.push(shown(&path, &section_name));
            return Err(ConfigError::IncludeLoop {
                chain: chain.join(" -> "),
            });
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(ConfigError::IncludeDepth {
                path: PathBuf::from(&path),
                max: MAX_INCLUDE_DEPTH,
                at,
            });
        }
        let text = std::fs::read_to_string(self.globals.cwd.join(&path))
            .map_err(|e| ConfigError::read_file(PathBuf::from(&path), e))?;
        let parsed =
            formats::parse(format, &text, &section_name).map_err(|e| ConfigError::Syntax {
                at: Source::File {
                    path: PathBuf::from(&path),
                    line: e.line,
                },
                message: e.message,
            })?;
        if !self
            .out
            .config_files
            .iter()
            .any(|p| p.as_os_str() == path.as_str())
        {
            self.out.config_files.push(PathBuf::from(&path));
        }
        if !parsed.section_found {
            self.out.warnings.push(format!(
                "section [{section_name}] not found in config file '{path}'"
            ));
        }
        self.last_file = Some(path.clone());
        let first = self.first.get_or_insert_with(|| ctx.clone()).clone();
        self.stack
            .push((ctx.abs.clone(), section_name, path.clone()));
        for entry in parsed.entries {
            if self.out.halt.is_some() {
                break;
            }
            let value = subst::expand_magic(&entry.value, &ctx, &first, &self.globals);
            let at = Source::File {
                path: PathBuf::from(&path),
                line: entry.line,
            };
            self.push(entry.key, Some(value), at, Origin::Key)?;
        }
        self.stack.pop();
        Ok(())
    }

    /// Applies the deferred substitutions and returns everything collected.
    pub fn finish(mut self) -> Result<Collected, ConfigError> {
        if self.out.halt.is_some() {
            // Help and version print without looking at values.
            return Ok(self.out);
        }
        for i in 0..self.out.opts.len() {
            let opt = &self.out.opts[i];
            if opt.expanded {
                continue;
            }
            let Some(value) = &opt.value else { continue };
            note_references(&mut self.out.referenced, value);
            let new = expand_value(value, self.env, &self.out.opts, &opt.at)?;
            self.out.opts[i].value = Some(new);
            self.out.opts[i].expanded = true;
        }
        Ok(self.out)
    }
}

/// Adds the names `value` uses as `%(name)` to `referenced`.
fn note_references(referenced: &mut std::collections::HashSet<String>, value: &str) {
    let mut rest = value;
    while let Some(start) = rest.find("%(") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find(')') else { break };
        referenced.insert(rest[..end].to_string());
        rest = &rest[end + 1..];
    }
}

/// `$(ENV)`, then `@(file)`, then `%(name)` against `opts` (first occurrence wins).
fn expand_value(
    value: &str,
    env: &HashMap<String, String>,
    opts: &[RawOpt],
    at: &Source,
) -> Result<String, ConfigError> {
    let v = subst::expand_env(value, env);
    let v =
        subst::expand_files(&v).map_err(|(path, io)| match ConfigError::read_file(path, io) {
            ConfigError::ReadFile { path, reason, .. } => ConfigError::InvalidValue {
                name: "@()".to_string(),
                value: path.display().to_string(),
                at: at.clone(),
                expected: format!("a readable file ({reason})"),
            },
            other => other,
        })?;
    Ok(subst::expand_placeholders(&v, |name| {
        opts.iter()
            .find(|o| o.key == name)
            .map(|o| o.value.clone().unwrap_or_else(|| "1".to_string()))
    }))
}

/// Checks a command-line option exists and is implemented.
fn cli_def(
    def: Option<&'static OptionDef>,
    written: &str,
    at: &Source,
) -> Result<&'static OptionDef, ConfigError> {
    match def {
        None if is_uwsgi_option(written.trim_start_matches('-')) => {
            Err(ConfigError::NotImplemented {
                name: written.trim_start_matches('-').to_string(),
                at: at.clone(),
            })
        }
        None => Err(ConfigError::UnknownOption {
            name: written.to_string(),
            at: at.clone(),
        }),
        Some(d) if d.status == Status::NotYet => Err(ConfigError::NotImplemented {
            name: match written.strip_prefix("--") {
                Some(long) => long.to_string(),
                None => d.name.to_string(),
            },
            at: at.clone(),
        }),
        Some(d) => Ok(d),
    }
}

fn take_required(
    args: &[String],
    i: &mut usize,
    name: &str,
    at: &Source,
) -> Result<String, ConfigError> {
    let v = args
        .get(*i)
        .cloned()
        .ok_or_else(|| ConfigError::MissingValue {
            name: name.to_string(),
            at: at.clone(),
        })?;
    *i += 1;
    Ok(v)
}

/// The next word as the optional value of an option of `kind`, when it looks like one.
fn take_if(args: &[String], i: &mut usize, kind: Kind) -> Option<String> {
    let v = args.get(*i).filter(|a| kind.takes_word(a))?.clone();
    *i += 1;
    Some(v)
}

/// `pkg.mod:callable`.
fn looks_like_module(s: &str) -> bool {
    let ident = |p: &str| {
        !p.is_empty()
            && p.split('.').all(|part| {
                !part.is_empty()
                    && !part.starts_with(|c: char| c.is_ascii_digit())
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    matches!(s.split_once(':'), Some((m, c)) if ident(m) && ident(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_and_mode_shapes() {
        assert!(looks_like_module("pkg.mod:app"));
        assert!(looks_like_module("app:application"));
        assert!(!looks_like_module("pkg.mod"));
        assert!(!looks_like_module(":3031"));
        assert!(!looks_like_module("1.2:3"));
        assert!(Kind::Mode.takes_word("660") && Kind::Mode.takes_word("0660"));
        assert!(!Kind::Mode.takes_word("--master") && !Kind::Mode.takes_word("8080"));
        assert!(Kind::Switch.takes_word("1") && Kind::Switch.takes_word("0"));
        assert!(!Kind::Switch.takes_word("app.py") && !Kind::Switch.takes_word("-1"));
        assert!(!Kind::Switch.takes_word("") && !Kind::Flag.takes_word("1"));
    }
}
