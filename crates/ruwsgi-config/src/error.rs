//! [`ConfigError`], the one error type of this crate, and [`Source`], where a value came from.
//!
//! Every configuration error is fatal for the instance (the binary maps all of them to one
//! exit code), so there is no retry classification; what matters is that each message names
//! the option, the offending value and its [`Source`] so the operator can fix it in one go.

use std::fmt;
use std::path::PathBuf;

/// Where one raw option came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The command line; `index` counts arguments from 1 (argv\[0\] excluded).
    CommandLine {
        /// 1-based argument position.
        index: usize,
    },
    /// A configuration file, with the 1-based line when the format gives one.
    File {
        /// The path as it was given.
        path: PathBuf,
        /// The line, for ini and YAML.
        line: Option<usize>,
    },
    /// An `UWSGI_*` environment variable.
    Env {
        /// The variable name.
        var: String,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::CommandLine { index } => write!(f, "command line argument {index}"),
            Source::File {
                path,
                line: Some(line),
            } => write!(f, "{}:{line}", path.display()),
            Source::File { path, line: None } => write!(f, "{}", path.display()),
            Source::Env { var } => write!(f, "environment variable {var}"),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A command-line option that does not exist.
    #[error("unknown option '{name}' (from {at})")]
    UnknownOption {
        /// The option as written (`--foo`, `-q`).
        name: String,
        /// Where.
        at: Source,
    },
    /// An unknown key in a config file or `set` while `strict` is on.
    #[error("unknown option '{name}' (from {at}) in strict mode{hint}")]
    UnknownKey {
        /// The key.
        name: String,
        /// Where.
        at: Source,
        /// `; did you mean 'x'?`, or how to declare a value for the app.
        hint: String,
    },
    /// An unknown key in a config file or `set` whose name is close to an option's and
    /// that nothing uses as `%(key)`: a typo, refused rather than silently kept.
    #[error(
        "unknown option '{name}' (from {at}): did you mean '{meant}'? (a value for the app \
         whose name is this close to an option's must be declared with \
         `set-placeholder = {name}=VALUE`)"
    )]
    NearOption {
        /// The key as written.
        name: String,
        /// Where.
        at: Source,
        /// The option name or alias it is close to.
        meant: String,
    },
    /// A uWSGI option ruwsgi does not implement yet.
    #[error("option '{name}' (from {at}) is a uWSGI option ruwsgi does not implement yet")]
    NotImplemented {
        /// The option as written.
        name: String,
        /// Where.
        at: Source,
    },
    /// A value that does not parse or is out of range.
    #[error("invalid value '{value}' for option '{name}' (from {at}): expected {expected}")]
    InvalidValue {
        /// The option as written.
        name: String,
        /// The value after substitution.
        value: String,
        /// Where.
        at: Source,
        /// What would have been accepted.
        expected: String,
    },
    /// Options that cannot be used together, or one that needs another.
    #[error("option '{name}' (from {at}) {reason}")]
    Incompatible {
        /// The option as written.
        name: String,
        /// Where.
        at: Source,
        /// What it conflicts with or needs.
        reason: String,
    },
    /// An option that needs a value got none.
    #[error("option '{name}' (from {at}) requires a value")]
    MissingValue {
        /// The option as written.
        name: String,
        /// Where.
        at: Source,
    },
    /// A `plugins` entry that is not built in.
    #[error("plugin '{plugin}' (from {at}) is not available: ruwsgi has python (python, python3, python3NN), http and notfound built in")]
    UnknownPlugin {
        /// The plugin name.
        plugin: String,
        /// Where.
        at: Source,
    },
    /// A bare command-line argument that is neither a config file nor an app.
    #[error(
        "don't know what to do with argument '{arg}' (command line argument {index}): \
         expected a config file (.ini/.yaml/.json/.toml), a .py/.wsgi file or pkg.mod:callable"
    )]
    UnknownArgument {
        /// The argument.
        arg: String,
        /// 1-based position.
        index: usize,
    },
    /// An argument that is not valid UTF-8.
    #[error("command line argument {index} is not valid UTF-8")]
    NotUtf8 {
        /// 1-based position.
        index: usize,
    },
    /// A config file that cannot be read.
    #[error("cannot read config file '{}': {reason}", path.display())]
    ReadFile {
        /// The path as given.
        path: PathBuf,
        /// The OS error text without the errno suffix.
        reason: String,
        /// The underlying error.
        #[source]
        io: std::io::Error,
    },
    /// A config file that does not parse.
    #[error("syntax error in config file {at}: {message}")]
    Syntax {
        /// The file (and line when known).
        at: Source,
        /// What is wrong.
        message: String,
    },
    /// A config file that includes itself, directly or not.
    #[error("config include loop: {chain}")]
    IncludeLoop {
        /// The chain of files, `a.ini -> b.ini -> a.ini`.
        chain: String,
    },
    /// Config files nested too deeply.
    #[error("config files nested more than {max} deep at '{}' (from {at})", path.display())]
    IncludeDepth {
        /// The file that would exceed the depth.
        path: PathBuf,
        /// The limit.
        max: usize,
        /// Where it was included from.
        at: Source,
    },
    /// `-` (stdin) as a config file.
    #[error("reading a config file from standard input is not supported (from {at})")]
    Stdin {
        /// Where.
        at: Source,
    },
}

impl ConfigError {
    /// Builds [`ConfigError::ReadFile`], dropping the " (os error N)" suffix from the text.
    pub(crate) fn read_file(path: PathBuf, io: std::io::Error) -> Self {
        let text = io.to_string();
        let reason = match text.find(" (os error") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        ConfigError::ReadFile { path, reason, io }
    }

    /// The source the error points at, when there is one.
    pub fn source_location(&self) -> Option<&Source> {
        match self {
            ConfigError::UnknownOption { at, .. }
            | ConfigError::UnknownKey { at, .. }
            | ConfigError::NearOption { at, .. }
            | ConfigError::NotImplemented { at, .. }
            | ConfigError::InvalidValue { at, .. }
            | ConfigError::MissingValue { at, .. }
            | ConfigError::Incompatible { at, .. }
            | ConfigError::UnknownPlugin { at, .. }
            | ConfigError::Syntax { at, .. }
            | ConfigError::IncludeDepth { at, .. }
            | ConfigError::Stdin { at } => Some(at),
            _ => None,
        }
    }
}
