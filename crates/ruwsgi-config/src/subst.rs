//! Value substitutions: `%x` magic variables, `$(ENV)`, `@(file)` and `%(placeholder)`.
//!
//! Magic variables are expanded when a config file is read, because they describe *that*
//! file ([`FileCtx`]); upper-case variants describe the first (top-level) file. The other
//! three passes run once per value, in uWSGI's order `$()`, `@()`, `%()`, each over the
//! output of the previous one and never over its own output, so a value cannot expand
//! recursively.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One config file as the magic variables see it.
#[derive(Debug, Clone)]
pub struct FileCtx {
    /// `%o`: the path as given.
    pub given: String,
    /// `%p`: the absolute path.
    pub abs: PathBuf,
    /// `%x`: the `:section` part, when one was given.
    pub section: Option<String>,
}

impl FileCtx {
    /// Describes the file `given` (relative paths resolve against `cwd`).
    pub fn new(given: &str, section: Option<&str>, cwd: &Path) -> FileCtx {
        let joined = cwd.join(given);
        let abs = joined.canonicalize().unwrap_or(joined);
        FileCtx {
            given: given.to_string(),
            abs,
            section: section.map(str::to_string),
        }
    }

    fn dir(&self) -> &Path {
        self.abs.parent().unwrap_or(Path::new("/"))
    }

    /// The value of a file-describing magic letter (lower-case form), if it is one.
    fn magic(&self, c: char) -> Option<String> {
        let name = self
            .abs
            .file_name()
            .map(|s| s.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        Some(match c {
            'd' => {
                let d = self.dir().to_string_lossy().into_owned();
                if d.ends_with('/') {
                    d
                } else {
                    d + "/"
                }
            }
            'p' => self.abs.to_string_lossy().into_owned(),
            's' => name,
            'n' => match name.rsplit_once('.') {
                Some((stem, _)) if !stem.is_empty() => stem.to_string(),
                _ => name,
            },
            'e' => match name.rsplit_once('.') {
                Some((stem, ext)) if !stem.is_empty() => ext.to_string(),
                _ => String::new(),
            },
            'c' => self
                .dir()
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            'x' => self.section.clone().unwrap_or_default(),
            'o' => self.given.clone(),
            'i' => std::fs::metadata(&self.abs)
                .map(|m| m.ino().to_string())
                .unwrap_or_default(),
            'j' => format!("{:x}", djb33x(self.abs.to_string_lossy().as_bytes())),
            '0'..='9' => {
                let idx = c as usize - '0' as usize;
                self.dir()
                    .components()
                    .filter_map(|c| match c {
                        std::path::Component::Normal(s) => Some(s.to_string_lossy()),
                        _ => None,
                    })
                    .nth(idx)
                    .map(|s| s.into_owned())
                    .unwrap_or_default()
            }
            _ => return None,
        })
    }
}

/// uWSGI's djb33x hash (for `%j`).
fn djb33x(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(5381u32, |h, &b| h.wrapping_mul(33) ^ u32::from(b))
}

/// Process-wide facts the magic variables expose, captured once per load.
#[derive(Debug, Clone)]
pub struct Globals {
    /// `%v`: the working directory at startup.
    pub cwd: PathBuf,
    /// `%h`: the host name.
    pub hostname: String,
}

impl Globals {
    /// Captures the current directory and host name.
    pub fn capture() -> Globals {
        Globals {
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    fn magic(&self, c: char) -> Option<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Some(match c {
            'v' => self.cwd.to_string_lossy().into_owned(),
            'h' => self.hostname.clone(),
            't' => now.as_secs().to_string(),
            'T' => now.as_micros().to_string(),
            'k' => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .to_string(),
            'V' => crate::VERSION.to_string(),
            'b' => std::env::current_exe()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            'u' => nix::unistd::getuid().to_string(),
            'g' => nix::unistd::getgid().to_string(),
            'U' => nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_default(),
            'G' => nix::unistd::Group::from_gid(nix::unistd::getgid())
                .ok()
                .flatten()
                .map(|g| g.name)
                .unwrap_or_default(),
            '[' => "\x1b".to_string(),
            '%' => "%".to_string(),
            _ => return None,
        })
    }
}

/// Expands `%x` magic variables in a value read from `file`; `first` is the top-level file.
///
/// Unknown letters and digits expand to nothing; `%` followed by anything else (notably
/// `%(`) is kept for the placeholder pass.
pub fn expand_magic(s: &str, file: &FileCtx, first: &FileCtx, globals: &Globals) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some(m) if m.is_ascii_alphanumeric() || m == '[' || m == '%' => {
                chars.next();
                let value = globals.magic(m).or_else(|| file.magic(m)).or_else(|| {
                    first
                        .magic(m.to_ascii_lowercase())
                        .filter(|_| m.is_uppercase())
                });
                out.push_str(&value.unwrap_or_default());
            }
            _ => out.push('%'),
        }
    }
    out
}

/// Replaces every `open` ... `)` group in `s` using `f`; `None` keeps the group as written.
fn replace_groups<E>(
    s: &str,
    open: &str,
    mut f: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(')') else { break };
        out.push_str(&rest[..start]);
        let inner = &after[..end];
        match f(inner)? {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + open.len() + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `$(VAR)`, `$(VAR:-default)` (unset or empty) and `$(VAR-default)` (unset).
pub fn expand_env(s: &str, env: &HashMap<String, String>) -> String {
    let r: Result<String, std::convert::Infallible> = replace_groups(s, "$(", |inner| {
        Ok(if let Some((name, default)) = inner.split_once(":-") {
            Some(match env.get(name) {
                Some(v) if !v.is_empty() => v.clone(),
                _ => default.to_string(),
            })
        } else if let Some((name, default)) = inner.split_once('-') {
            Some(
                env.get(name)
                    .cloned()
                    .unwrap_or_else(|| default.to_string()),
            )
        } else {
            env.get(inner).cloned()
        })
    });
    r.unwrap_or_else(|e| match e {})
}

/// `@(path)`: the file's contents without one trailing newline.
pub fn expand_files(s: &str) -> Result<String, (PathBuf, std::io::Error)> {
    replace_groups(s, "@(", |path| match std::fs::read_to_string(path) {
        Ok(mut text) => {
            if text.ends_with('\n') {
                text.pop();
            }
            Ok(Some(text))
        }
        Err(e) => Err((PathBuf::from(path), e)),
    })
}

/// `%(name)`: the value `lookup` gives; unknown names are kept as written.
pub fn expand_placeholders(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let r: Result<String, std::convert::Infallible> =
        replace_groups(s, "%(", |name| Ok(lookup(name)));
    r.unwrap_or_else(|e| match e {})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(path: &str, section: Option<&str>) -> FileCtx {
        FileCtx {
            given: path.trim_start_matches("/srv/").to_string(),
            abs: PathBuf::from(path),
            section: section.map(str::to_string),
        }
    }

    #[test]
    fn magic_letters() {
        let g = Globals {
            cwd: PathBuf::from("/home/me"),
            hostname: "box".into(),
        };
        let f = ctx("/srv/app/conf/site.ini", Some("prod"));
        let first = ctx("/etc/top.yaml", None);
        let m = |s: &str| expand_magic(s, &f, &first, &g);
        assert_eq!(m("%d"), "/srv/app/conf/");
        assert_eq!(
            m("%p|%s|%n|%e|%c|%x|%o"),
            "/srv/app/conf/site.ini|site.ini|site|ini|conf|prod|app/conf/site.ini"
        );
        assert_eq!(m("%0-%1-%2"), "srv-app-conf");
        assert_eq!(
            m("%D%N|%X|%v|%h|100%%|%q|%(x)"),
            "/etc/top||/home/me|box|100%||%(x)"
        );
        assert_eq!(m("%V"), crate::VERSION);
        assert!(m("%t").parse::<u64>().is_ok());
    }

    #[test]
    fn env_forms() {
        let env: HashMap<String, String> = [
            ("HOME".to_string(), "/h".to_string()),
            ("E".to_string(), String::new()),
        ]
        .into();
        assert_eq!(expand_env("$(HOME)/x $(NOPE)", &env), "/h/x $(NOPE)");
        assert_eq!(expand_env("$(E:-d) $(E-d) $(U-d) $(U:-d)", &env), "d  d d");
        assert_eq!(expand_env("$(HOME", &env), "$(HOME");
    }

    #[test]
    fn placeholders() {
        let out = expand_placeholders("%(a)/%(b)/%(a b)", |n| (n == "a").then(|| "1".into()));
        assert_eq!(out, "1/%(b)/%(a b)");
    }
}
