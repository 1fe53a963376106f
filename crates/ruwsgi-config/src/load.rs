//! The entry point: [`load`] runs both layers and tells the binary what to do ([`Command`]).
//!
//! Order of sources, as in uWSGI: `UWSGI_*` environment variables, then the command line,
//! with config files expanded where they are named. `--help` and `--version` stop
//! collection at once; `--show-config` validates everything and returns the resolved options
//! as ini text.

use std::collections::HashMap;
use std::ffi::OsString;

use crate::error::ConfigError;
use crate::help;
use crate::hiargs;
use crate::lowargs::{Collector, Halt};
use crate::settings::Settings;
use crate::subst::Globals;

/// What the binary should do.
#[derive(Debug)]
pub enum Command {
    /// Start the server with these settings.
    Run(Box<Settings>),
    /// Print this help text and exit 0.
    Help(String),
    /// Print this version text and exit 0.
    Version(String),
    /// Print this ini text (the effective options) and exit 0.
    ShowConfig(String),
}

/// Loads the configuration from the command line (`args`, without argv\[0\]) and the
/// environment (`env`, e.g. `std::env::vars()`).
///
/// A configuration without any socket is returned as is; refusing it is the binary's call.
pub fn load(args: Vec<OsString>, env: Vec<(String, String)>) -> Result<Command, ConfigError> {
    let args = args
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.into_string()
                .map_err(|_| ConfigError::NotUtf8 { index: i + 1 })
        })
        .collect::<Result<Vec<String>, _>>()?;
    let env_map: HashMap<String, String> = env.iter().cloned().collect();
    let mut collector = Collector::new(&env_map, Globals::capture());
    collector.collect_env(&env)?;
    collector.collect_cli(&args)?;
    let collected = collector.finish()?;
    match collected.halt {
        Some(Halt::Help) => return Ok(Command::Help(help::help_text())),
        Some(Halt::Version) => return Ok(Command::Version(help::version_text())),
        None => {}
    }
    let shown = collected
        .show_config
        .then(|| help::show_config_text(&collected.opts));
    let settings = hiargs::build(collected)?;
    if let Some(text) = shown {
        return Ok(Command::ShowConfig(text));
    }
    Ok(Command::Run(Box::new(settings)))
}
