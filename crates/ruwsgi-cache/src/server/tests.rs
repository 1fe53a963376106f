//! The server against a small in-test backend.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use ruwsgi_proto::cache::{MagicCall, MagicReply};
use ruwsgi_proto::uwsgi::{self, HEADER_LEN};

use super::*;
use crate::Item;

/// Caches by name ("" = default), items never expire on their own; values of at most
/// `max` bytes.
pub(crate) struct MapBackend {
    caches: Mutex<HashMap<String, HashMap<Vec<u8>, Item>>>,
    max: usize,
}

impl MapBackend {
    pub(crate) fn new(names: &[&str], max: usize) -> MapBackend {
        let caches = names
            .iter()
            .map(|n| (n.to_string(), HashMap::new()))
            .collect();
        MapBackend {
            caches: Mutex::new(caches),
            max,
        }
    }

    fn with<T>(
        &self,
        cache: Option<&str>,
        f: impl FnOnce(&mut HashMap<Vec<u8>, Item>) -> Result<T, CacheError>,
    ) -> Result<T, CacheError> {
        let mut caches = self.caches.lock().unwrap();
        let c = caches
            .get_mut(cache.unwrap_or(""))
            .ok_or(CacheError::UnknownCache)?;
        f(c)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl CacheBackend for MapBackend {
    fn get(&self, cache: Option<&str>, key: &[u8]) -> Result<Option<Item>, CacheError> {
        self.with(cache, |c| Ok(c.get(key).cloned()))
    }
    fn exists(&self, cache: Option<&str>, key: &[u8]) -> Result<bool, CacheError> {
        self.with(cache, |c| Ok(c.contains_key(key)))
    }
    fn store(
        &self,
        cache: Option<&str>,
        key: &[u8],
        value: &[u8],
        expires: u64,
        overwrite: bool,
    ) -> Result<(), CacheError> {
        let max = self.max;
        self.with(cache, |c| {
            if key.is_empty() {
                return Err(CacheError::BadKey);
            }
            if value.is_empty() {
                return Err(CacheError::EmptyValue);
            }
            if value.len() > max {
                return Err(CacheError::TooLarge);
            }
            if !overwrite && c.contains_key(key) {
                return Err(CacheError::Exists);
            }
            let expires_at = if expires == 0 { 0 } else { now() + expires };
            c.insert(
                key.to_vec(),
                Item {
                    value: value.to_vec(),
                    expires_at,
                },
            );
            Ok(())
        })
    }
    fn delete(&self, cache: Option<&str>, key: &[u8]) -> Result<bool, CacheError> {
        self.with(cache, |c| Ok(c.remove(key).is_some()))
    }
    fn clear(&self, cache: Option<&str>) -> Result<(), CacheError> {
        self.with(cache, |c| {
            c.clear();
            Ok(())
        })
    }
}

fn backend() -> MapBackend {
    MapBackend::new(&["", "other"], 100)
}

/// Send a whole packet (header + rest) through `request_len` and `answer`.
fn send(b: &MapBackend, packet: &[u8]) -> Answer {
    let header = uwsgi::parse_header(packet).unwrap();
    let rest = &packet[HEADER_LEN..];
    let Some(need) = request_len(header, rest, b.max) else {
        return Answer::close_silently();
    };
    assert_eq!(need, rest.len(), "request_len of {packet:?}");
    answer(b, header, rest, &"test", &mut Vars::new())
}

fn magic_packet(cmd: Command, key: &[u8], value: &[u8], cache: &[u8], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    cache::encode_magic_request(
        &MagicCall {
            cmd,
            key,
            value,
            expires: 0,
            cache,
            keep,
        },
        &mut out,
    )
    .unwrap();
    out
}

fn m(b: &MapBackend, cmd: Command, key: &[u8], value: &[u8]) -> Answer {
    send(b, &magic_packet(cmd, key, value, b"", false))
}

fn reply(a: &Answer) -> MagicReply {
    assert_eq!(a.head[..4], [111, (a.head.len() - 4) as u8, 0, 17]);
    cache::parse_magic_reply(&a.head[4..]).unwrap()
}

#[test]
fn magic_operations() {
    let b = backend();
    let a = m(&b, Command::Set, b"k", b"v1");
    assert!(reply(&a).ok && !a.close && a.body.is_empty());
    // set never overwrites: nothing, close
    assert_eq!(m(&b, Command::Set, b"k", b"v2"), Answer::close_silently());
    let a = m(&b, Command::Get, b"k", b"");
    let r = reply(&a);
    assert_eq!((r.ok, r.size, r.expires_at), (true, 2, 0));
    assert_eq!(a.body, b"v1");
    assert!(!a.close);
    assert!(reply(&m(&b, Command::Update, b"k", b"v3")).ok);
    assert_eq!(m(&b, Command::Get, b"k", b"").body, b"v3");
    assert!(reply(&m(&b, Command::Exists, b"k", b"")).ok);
    assert!(reply(&m(&b, Command::Del, b"k", b"")).ok);
    for cmd in [Command::Get, Command::Exists, Command::Del] {
        assert_eq!(m(&b, cmd, b"k", b""), Answer::close_silently(), "{cmd:?}");
    }
    m(&b, Command::Set, b"a", b"1");
    assert!(reply(&m(&b, Command::Clear, b"", b"")).ok);
    assert_eq!(m(&b, Command::Get, b"a", b""), Answer::close_silently());
}

#[test]
fn expiry_is_reported_as_an_absolute_time() {
    let b = backend();
    let mut p = Vec::new();
    cache::encode_magic_request(
        &MagicCall {
            cmd: Command::Update,
            key: b"e",
            value: b"x",
            expires: 100,
            cache: b"",
            keep: false,
        },
        &mut p,
    )
    .unwrap();
    assert!(reply(&send(&b, &p)).ok);
    let r = reply(&m(&b, Command::Get, b"e", b""));
    let t = now();
    assert!(r.expires_at >= t + 99 && r.expires_at <= t + 100, "{r:?}");
}

#[test]
fn named_caches_and_failures() {
    let b = backend();
    let p = magic_packet(Command::Set, b"k", b"in-other", b"other", false);
    assert!(reply(&send(&b, &p)).ok);
    assert_eq!(m(&b, Command::Get, b"k", b""), Answer::close_silently());
    let a = send(&b, &magic_packet(Command::Get, b"k", b"", b"other", false));
    assert_eq!(a.body, b"in-other");
    // an unknown cache: nothing, close (with keep=1: a status=fail dict, kept)
    let p = magic_packet(Command::Get, b"k", b"", b"nope", false);
    assert_eq!(send(&b, &p), Answer::close_silently());
    let a = send(&b, &magic_packet(Command::Get, b"k", b"", b"nope", true));
    assert!(!reply(&a).ok && !a.close);
    let a = send(&b, &magic_packet(Command::Get, b"zz", b"", b"", true));
    assert!(!reply(&a).ok && !a.close);
    let a = send(
        &b,
        &magic_packet(Command::Set, b"k", b"again", b"other", true),
    );
    assert!(!reply(&a).ok && !a.close);
    // too large: refused before reading the value
    let p = magic_packet(Command::Set, b"big", &[b'x'; 101], b"", false);
    let header = uwsgi::parse_header(&p).unwrap();
    assert_eq!(request_len(header, &p[4..], 100), None);
    let p = magic_packet(Command::Set, b"big", &[b'x'; 100], b"", false);
    assert!(reply(&send(&b, &p)).ok);
    // garbage
    let h = PacketHeader {
        modifier1: 111,
        datasize: 3,
        modifier2: 17,
    };
    assert_eq!(
        answer(&b, h, &[9, 0, 1], &"t", &mut Vars::new()),
        Answer::close_silently()
    );
    // a value shorter than announced
    let p = magic_packet(Command::Set, b"short", b"abcdef", b"", false);
    let header = uwsgi::parse_header(&p).unwrap();
    let cut = &p[4..p.len() - 2];
    assert_eq!(
        answer(&b, header, cut, &"t", &mut Vars::new()),
        Answer::close_silently()
    );
}

fn simple(b: &MapBackend, modifier2: u8, body: &[u8]) -> Answer {
    let mut p = cache::header(body.len() as u16, modifier2).to_vec();
    p.extend_from_slice(body);
    send(b, &p)
}

#[test]
fn simple_commands() {
    let b = backend();
    let mut arr = Vec::new();
    uwsgi::encode_array(&[b"key", b"value"], &mut arr).unwrap();
    assert_eq!(simple(&b, 1, &arr), Answer::close_silently());
    assert_eq!(b.get(None, b"key").unwrap().unwrap().value, b"value");
    // get: the intended header
    let a = simple(&b, 0, b"key");
    assert_eq!(
        (a.head, a.body, a.close),
        (vec![111, 5, 0, 0], b"value".to_vec(), true)
    );
    assert_eq!(simple(&b, 0, b"nope"), Answer::close_silently());
    // streamed get
    let a = simple(&b, 5, b"key");
    assert_eq!(
        (a.head, a.body, a.close),
        (vec![111, 0, 0, 1], b"value".to_vec(), true)
    );
    let a = simple(&b, 5, b"nope");
    assert_eq!(
        (a.head, a.body, a.close),
        (vec![111, 0, 0, 0], vec![], true)
    );
    // dict lookups
    let mut v = Vars::new();
    v.push(b"key", b"key");
    v.push(b"key", b"nope");
    v.push(b"get", b"nope");
    let mut d = Vec::new();
    uwsgi::encode_vars(&v, &mut d).unwrap();
    for m2 in [3, 4] {
        let a = simple(&b, m2, &d);
        assert!(a.close && a.head.is_empty());
        assert!(a.body.starts_with(b"valueHTTP/1.0 404 Not Found\r\n"));
    }
    // delete
    assert_eq!(simple(&b, 2, b"key"), Answer::close_silently());
    assert!(!b.exists(None, b"key").unwrap());
    // dump, UDP-only and unknown commands: nothing
    for m2 in [6, 10, 11, 9, 200] {
        assert_eq!(simple(&b, m2, b""), Answer::close_silently(), "{m2}");
    }
}
