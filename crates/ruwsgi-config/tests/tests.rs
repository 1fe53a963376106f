//! Integration tests of `ruwsgi_config::load`: every source, precedence, substitutions,
//! errors with locations, `uwsgi.opt` content, help.

mod cli;
mod errors;
mod files;
mod options;
mod substitutions;
mod util;
