//! Integration tests of the master: each test forks a master (the real [`ruwsgi_master::run`])
//! with a fake language plugin and a tiny HTTP worker, then drives it through an injected
//! command pipe (or real signals) and watches its phases, its log file and its children.
//! Every test holds `util::FORK_MTX` (STYLE R14).

mod boot;
mod channel;
mod lifecycle;
mod mules;
mod util;
