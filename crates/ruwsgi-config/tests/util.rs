//! Test helpers: a private temporary directory and `load` wrappers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ruwsgi_config::{load, Command, ConfigError, OptValue, Settings};

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ruwsgi-config-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir.canonicalize().unwrap())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` and returns its absolute path as a string.
    pub fn write(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn try_load(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
    load(
        args.iter().map(Into::into).collect(),
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Settings {
    match try_load(args, env) {
        Ok(Command::Run(s)) => *s,
        other => panic!("expected Run, got {other:?}"),
    }
}

pub fn run(args: &[&str]) -> Settings {
    run_env(args, &[])
}

pub fn err(args: &[&str]) -> String {
    match try_load(args, &[]) {
        Err(e) => e.to_string(),
        Ok(other) => panic!("expected an error, got {other:?}"),
    }
}

/// `uwsgi.opt` as (key, Some(value) | None for a flag).
pub fn opts(s: &Settings) -> Vec<(&str, Option<&str>)> {
    s.opt
        .iter()
        .map(|(k, v)| {
            let v = match v {
                OptValue::Flag => None,
                OptValue::Value(v) => Some(v.as_str()),
            };
            (k.as_str(), v)
        })
        .collect()
}
