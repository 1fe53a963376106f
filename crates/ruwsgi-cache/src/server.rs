//! Answering cache packets (modifier1 111) from a [`CacheBackend`].
//!
//! [`answer`] is the whole server side minus the I/O, like the RPC server: the worker reads
//! the packet (and, for a magic `set`/`update`, the value that follows it: see
//! [`request_len`]), writes the answer and keeps or closes the connection as it says.
//!
//! What each `modifier2` answers:
//!
//! | mod2 | request | success | failure / miss |
//! |---|---|---|---|
//! | 0 | raw key | `(111, len, 0)` + value; close | nothing; close |
//! | 1 | array `[key][value]` | set in the default cache (never overwrites); nothing; close | nothing; close |
//! | 2 | raw key | delete from the default cache; nothing; close | nothing; close |
//! | 3, 4 | dict of `key=`/`get=` | each value found, raw; close | `key=`: nothing; `get=`: HTTP 404; close |
//! | 5 | raw key | `(111, 0, 1)` + value; close | `(111, 0, 0)`; close |
//! | 6 | cache name | nothing; close (see below) | |
//! | 17 | magic dict (+ value) | `(111, len, 17)` + dict (+ value); connection kept | nothing; close. With `keep=1`: a `status=fail` dict; connection kept |
//! | other (10, 11: UDP only) | | nothing; close | |
//!
//! Two choices differ from uWSGI on purpose:
//! - simple gets (0 and 5) start with the intended `(111, len, 0)` / `(111, 0, 1|0)` header;
//!   uWSGI writes four bytes of a memory address there instead;
//! - the full dump (6) that a uWSGI instance started with `cache-sync` asks for is not
//!   served: it is a copy of uWSGI's own memory image (item table and blocks in its layout),
//!   which ruwsgi's cache does not have, so a uWSGI instance cannot sync from ruwsgi. The
//!   request gets no answer, which such an instance reads as "node unavailable".
//!
//! Only magic operations keep the connection: every other command closes it, as uWSGI does.
//! A uWSGI node also closes after each magic reply; keeping it costs a uWSGI client nothing
//! (it closes its side) and saves ruwsgi clients a reconnect.
//!
//! On the dict commands (3, 4): uWSGI 2.0.30 was measured answering every `key=` with
//! nothing and every `get=` with a 404, even for keys that are present. ruwsgi answers what
//! the commands are meant to do: the value when it is there.

use std::fmt::Display;

use ruwsgi_proto::cache::{self, command, Command, DictLookup, MagicRequest};
pub use ruwsgi_proto::uwsgi::Answer;
use ruwsgi_proto::uwsgi::PacketHeader;
use ruwsgi_proto::Vars;
use ruwsgi_sys::log_line;

use crate::{CacheBackend, CacheError};

/// How many bytes the request needs after its 4-byte header: `datasize`, plus for a magic
/// `set`/`update` the `size` value bytes that follow the dict. `body` is the packet body
/// (`datasize` bytes). A value larger than `max_value` is refused here (`None`: answer
/// nothing and close), before the worker reads or allocates it. Every other packet needs
/// just its body.
pub fn request_len(header: PacketHeader, body: &[u8], max_value: usize) -> Option<usize> {
    let datasize = header.datasize as usize;
    if header.modifier2 != command::MAGIC {
        return Some(datasize);
    }
    match cache::parse_magic_request(body.get(..datasize)?, max_value) {
        Ok(req) if req.cmd.has_value() => Some(datasize + req.size),
        Ok(_) => Some(datasize),
        // Answered (with nothing) by `answer`; nothing more to read.
        Err(cache::CacheProtoError::BadSize) => None,
        Err(_) => Some(datasize),
    }
}

/// Answer one cache packet. `request` is everything after the header: the `datasize` body,
/// followed for a magic `set`/`update` by its value ([`request_len`] bytes in all). `peer`
/// names the caller in log lines; `vars` is scratch space kept for parity with the RPC
/// server (dicts are walked in place).
pub fn answer(
    backend: &dyn CacheBackend,
    header: PacketHeader,
    request: &[u8],
    peer: &dyn Display,
    vars: &mut Vars,
) -> Answer {
    vars.clear();
    let datasize = (header.datasize as usize).min(request.len());
    let body = &request[..datasize];
    match header.modifier2 {
        command::MAGIC => magic(backend, body, &request[datasize..], peer),
        command::GET => match found(backend.get(None, body)) {
            Some(value) => match cache::simple_get_head(value.len()) {
                Some(head) => Answer::close_with(head.to_vec(), value),
                None => Answer::close_silently(),
            },
            None => Answer::close_silently(),
        },
        command::STREAM => match found(backend.get(None, body)) {
            Some(value) => Answer::close_with(cache::stream_head(true).to_vec(), value),
            None => Answer::close_with(cache::stream_head(false).to_vec(), Vec::new()),
        },
        command::SET => {
            match cache::parse_simple_set(body) {
                Ok((key, value)) => {
                    if let Err(e) = backend.store(None, key, value, 0, false) {
                        log_failure(peer, "set", e);
                    }
                }
                Err(e) => log_line(&format!(
                    "ruwsgi: invalid cache set packet from {peer}: {e}; closing"
                )),
            }
            Answer::close_silently()
        }
        command::DEL => {
            if !body.is_empty() {
                let _ = backend.delete(None, body);
            }
            Answer::close_silently()
        }
        command::DICT | command::DICT_ALT => dict_command(backend, body, peer),
        // DUMP: see the module documentation. UDP_SET/UDP_DEL arrive as datagrams only.
        _ => Answer::close_silently(),
    }
}

/// A hit's value; misses and errors are `None`.
fn found(got: Result<Option<crate::Item>, CacheError>) -> Option<Vec<u8>> {
    got.ok().flatten().map(|item| item.value)
}

fn log_failure(peer: &dyn Display, what: &str, e: CacheError) {
    // Misses and refused sets are ordinary outcomes; only say something about the cache
    // itself being wrong.
    if e == CacheError::UnknownCache {
        log_line(&format!("ruwsgi: cache {what} from {peer}: {e}"));
    }
}

fn dict_command(backend: &dyn CacheBackend, body: &[u8], peer: &dyn Display) -> Answer {
    let lookups = match cache::parse_dict_command(body) {
        Ok(l) => l,
        Err(e) => {
            log_line(&format!(
                "ruwsgi: invalid cache dict packet from {peer}: {e}; closing"
            ));
            return Answer::close_silently();
        }
    };
    let mut out = Vec::new();
    for lookup in lookups {
        match lookup {
            DictLookup::Key(key) => {
                if let Some(v) = found(backend.get(None, key)) {
                    out.extend_from_slice(&v);
                }
            }
            DictLookup::Get(key) => match found(backend.get(None, key)) {
                Some(v) => out.extend_from_slice(&v),
                None => out.extend_from_slice(cache::HTTP_NOT_FOUND),
            },
        }
    }
    Answer::close_with(Vec::new(), out)
}

fn magic(backend: &dyn CacheBackend, dict: &[u8], value: &[u8], peer: &dyn Display) -> Answer {
    let req = match cache::parse_magic_request(dict, usize::MAX) {
        Ok(r) => r,
        Err(e) => {
            log_line(&format!(
                "ruwsgi: invalid cache request from {peer}: {e}; closing"
            ));
            return Answer::close_silently();
        }
    };
    let failed = |req: &MagicRequest<'_>| {
        if req.keep {
            let mut head = Vec::with_capacity(20);
            cache::encode_failed_reply(&mut head);
            Answer {
                head,
                body: Vec::new(),
                close: false,
            }
        } else {
            Answer::close_silently()
        }
    };
    let name = match std::str::from_utf8(req.cache) {
        Ok("") => None,
        Ok(n) => Some(n),
        // No cache has a name that is not UTF-8.
        Err(_) => return failed(&req),
    };
    let ok = |item: Option<crate::Item>| {
        let mut head = Vec::with_capacity(64);
        let body = match item {
            Some(item) => {
                cache::encode_ok_reply(Some((item.value.len(), item.expires_at)), &mut head);
                item.value
            }
            None => {
                cache::encode_ok_reply(None, &mut head);
                Vec::new()
            }
        };
        Answer {
            head,
            body,
            close: false,
        }
    };
    let outcome: Result<Option<Option<crate::Item>>, CacheError> = match req.cmd {
        Command::Get => backend
            .get(name, req.key)
            .map(|item| item.filter(|i| !i.value.is_empty()).map(Some)),
        Command::Exists => backend
            .exists(name, req.key)
            .map(|there| there.then_some(None)),
        Command::Del => backend
            .delete(name, req.key)
            .map(|there| there.then_some(None)),
        Command::Clear => backend.clear(name).map(|()| Some(None)),
        Command::Set | Command::Update => {
            if value.len() < req.size {
                // The worker read less than `request_len` asked for.
                return Answer::close_silently();
            }
            backend
                .store(
                    name,
                    req.key,
                    &value[..req.size],
                    req.expires,
                    req.cmd == Command::Update,
                )
                .map(|()| Some(None))
        }
    };
    match outcome {
        Ok(Some(item)) => ok(item),
        Ok(None) => failed(&req),
        Err(e) => {
            log_failure(peer, std::str::from_utf8(req.cmd.name()).unwrap_or("?"), e);
            failed(&req)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
