//! Named `modifier1` values: the first header byte, which selects a packet's handler.
//!
//! Names and meanings come from the uWSGI behaviour reference (§1.4, §1.6–§1.10); `modifier2`
//! is a sub-command whose meaning depends on `modifier1`. This module only names values: which
//! ones ruwsgi serves, and for which peers, is the worker's policy.
//!
//! What uWSGI does with a `modifier1` no handler claims: it logs
//! `-- unavailable modifier requested: N --` and closes the connection without writing
//! anything (the uwsgi protocol has no error reply). ruwsgi's safer defaults (HTTP rules §4)
//! add: [`ADMIN`], [`SPOOLER`] and [`EVAL`] are never served, and [`SIGNAL`], [`CACHE`] and
//! [`RPC`] are answered only for trusted peers.

/// WSGI request: the body is a vars block, and the request body follows the packet. (When no
/// plugin registered for 0, uWSGI hands such requests to the default app's plugin.)
pub const REQUEST: u8 = 0;
/// PSGI (Perl) request. Not served by ruwsgi (no Perl plugin).
pub const PSGI: u8 = 5;
/// Management request. Never served by default.
pub const ADMIN: u8 = 10;
/// Remote spooler enqueue (also the header of spool files). Never served over a socket by
/// default.
pub const SPOOLER: u8 = 17;
/// Raw code evaluation. Never served by default.
pub const EVAL: u8 = 22;
/// WSGI request like [`REQUEST`], but the `SCRIPT_NAME` prefix is stripped from `PATH_INFO`
/// before the app runs.
pub const REQUEST_PATH_INFO: u8 = 30;
/// Not a command: `b'H'`. A raw HTTP response (`HTTP/1.x ...`) read as a uwsgi header has
/// this `modifier1`; WSGI responses over the uwsgi protocol are plain HTTP.
pub const HTTP_RESPONSE: u8 = b'H';
/// Ping: request `(100, 0, 0)`; the reply reuses the header with `modifier2 = 1` and the
/// warning message (if any) as its body.
pub const PING: u8 = 100;
/// Echo: the request's body bytes are written back verbatim, without a header.
pub const ECHO: u8 = 101;
/// uWSGI signal: `modifier2` is the signal number; the reply is `(255, 0, status)`.
pub const SIGNAL: u8 = 110;
/// Cache operation: `modifier2` selects the command.
pub const CACHE: u8 = 111;
/// Remote procedure call: the body is an array (function name, then arguments).
pub const RPC: u8 = 173;
/// Subscription packet (`modifier2` is the command).
pub const SUBSCRIPTION: u8 = 224;
/// Generic response: `modifier2` carries a status.
pub const RESPONSE: u8 = 255;

/// A WSGI request packet ([`REQUEST`] or [`REQUEST_PATH_INFO`]): its body is a vars block and
/// an app runs for it.
pub fn is_wsgi_request(modifier1: u8) -> bool {
    matches!(modifier1, REQUEST | REQUEST_PATH_INFO)
}

/// A short description of `modifier1` for logs, from the reference's registry (documentation-
/// only values included); `None` for a value the reference does not list.
pub fn describe(modifier1: u8) -> Option<&'static str> {
    Some(match modifier1 {
        REQUEST => "WSGI request",
        1..=3 => "reserved",
        PSGI => "PSGI request",
        6 => "Lua/WSAPI request",
        7 => "Rack request",
        8 => "JVM request",
        9 => "CGI request",
        ADMIN => "management request",
        11 => "gccgo request",
        14 => "PHP request",
        15 => "Mono/ASP.NET request",
        SPOOLER => "spooler enqueue",
        18 => "symcall",
        19 => "SSI",
        EVAL => "raw code eval",
        23 => "XSLT",
        24 => "V8",
        25 => "GridFS",
        26 => "fastfunc",
        27 => "GlusterFS",
        28 => "RADOS",
        REQUEST_PATH_INFO => "WSGI request (SCRIPT_NAME stripped from PATH_INFO)",
        31..=33 => "reserved message type",
        35 => "WebDAV",
        48 => "SNMP",
        HTTP_RESPONSE => "HTTP response (not a command)",
        73 => "multicast announce",
        74 => "multicast message",
        95..=99 => "legacy clustering, reload or config request",
        PING => "ping",
        ECHO => "echo",
        109 => "legion message",
        SIGNAL => "signal",
        CACHE => "cache",
        115 => "emperor config push",
        123 => "corerouter internal condition",
        RPC => "RPC",
        200 => "persistent connection close mark",
        SUBSCRIPTION => "subscription",
        250 => "example plugin",
        RESPONSE => "generic response",
        _ => return None,
    })
}
