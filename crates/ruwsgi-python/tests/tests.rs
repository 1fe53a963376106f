//! Integration tests of the Python plugin: one binary, topic modules, a fake connection and
//! host (`util`). Python is per process, so tests run one at a time (`util::serial`).

mod input;
mod module;
mod perf;
mod util;
mod wsgi;
