//! Which handler a uwsgi packet goes to, decided by its `modifier1` alone.
//!
//! [`route`] is one `match` over the named values of `ruwsgi_proto::uwsgi::modifier`, so the
//! whole policy reads in one place and every byte value has an answer (fuzz oracle: modifier
//! dispatch is total). WSGI requests (0, and 30 with `SCRIPT_NAME` stripped) run the app.
//! Signal, cache, RPC and spooler (remote enqueue) packets are [`Subsystem`] packets: only trusted peers (unix sockets,
//! loopback, `uwsgi-trusted-peers`) get past the door, and their handlers plug in at the
//! `CoreLoop::serve_subsystem` dispatch point. Everything else is what uWSGI calls an
//! unavailable modifier: it logs `-- unavailable modifier requested: N --` and closes the
//! connection without a reply, because the uwsgi protocol has no error packet.

use ruwsgi_proto::uwsgi::modifier;

/// Where a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A WSGI request: a vars block, then the request body.
    Wsgi {
        /// modifier1 30: remove the `SCRIPT_NAME` prefix from `PATH_INFO`.
        strip_script_name: bool,
    },
    /// A packet for a server subsystem, answered for trusted peers only.
    Subsystem(Subsystem),
    /// Nothing serves this modifier1: log it and close without a reply.
    Unavailable,
}

/// The server subsystems reachable over the uwsgi protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subsystem {
    /// modifier1 110: raise a uWSGI signal (`modifier2` is its number).
    Signal,
    /// modifier1 111: a cache operation (`modifier2` is the command).
    Cache,
    /// modifier1 173: a remote procedure call.
    Rpc,
    /// modifier1 17: remote enqueue of a spooler task.
    Spooler,
}

impl Subsystem {
    /// The modifier1 that selects this subsystem.
    pub fn modifier1(self) -> u8 {
        match self {
            Subsystem::Signal => modifier::SIGNAL,
            Subsystem::Cache => modifier::CACHE,
            Subsystem::Rpc => modifier::RPC,
            Subsystem::Spooler => modifier::SPOOLER,
        }
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Subsystem::Signal => "signal",
            Subsystem::Cache => "cache",
            Subsystem::Rpc => "RPC",
            Subsystem::Spooler => "spooler",
        }
    }
}

/// The handler for a packet whose header carries `modifier1`.
pub fn route(modifier1: u8) -> Route {
    match modifier1 {
        modifier::REQUEST => Route::Wsgi {
            strip_script_name: false,
        },
        modifier::REQUEST_PATH_INFO => Route::Wsgi {
            strip_script_name: true,
        },
        modifier::SIGNAL => Route::Subsystem(Subsystem::Signal),
        modifier::CACHE => Route::Subsystem(Subsystem::Cache),
        modifier::RPC => Route::Subsystem(Subsystem::Rpc),
        modifier::SPOOLER => Route::Subsystem(Subsystem::Spooler),
        // Management (10) and raw eval (22) are never served from a socket;
        // ping, echo, subscriptions and the other plugins' modifiers have no handler yet.
        _ => Route::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_modifier_has_a_route() {
        let mut wsgi = Vec::new();
        let mut subsystems = Vec::new();
        for m in 0..=u8::MAX {
            match route(m) {
                Route::Wsgi { strip_script_name } => wsgi.push((m, strip_script_name)),
                Route::Subsystem(s) => {
                    assert_eq!(s.modifier1(), m);
                    subsystems.push(m);
                }
                Route::Unavailable => {}
            }
        }
        assert_eq!(wsgi, [(0, false), (30, true)]);
        assert_eq!(subsystems, [17, 110, 111, 173]);
        for m in wsgi.iter().map(|w| w.0) {
            assert!(modifier::is_wsgi_request(m));
        }
    }

    #[test]
    fn unserved_modifiers_are_unavailable() {
        for m in [
            modifier::PSGI,
            modifier::ADMIN,
            modifier::EVAL,
            modifier::HTTP_RESPONSE,
            modifier::PING,
            modifier::ECHO,
            modifier::SUBSCRIPTION,
            modifier::RESPONSE,
        ] {
            assert_eq!(route(m), Route::Unavailable, "modifier1 {m}");
        }
    }
}
