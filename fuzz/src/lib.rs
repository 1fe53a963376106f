//! Oracles for the ruwsgi-proto fuzz targets.
//!
//! Each `check_*` function takes arbitrary bytes and panics if a property of the parsers does
//! not hold. The libFuzzer targets in `fuzz_targets/` only forward to them, so the same
//! checks also run on stable Rust as ordinary tests over seeds and pseudo-random mutations
//! (`cargo test --manifest-path fuzz/Cargo.toml`).

use ruwsgi_config::formats::{self, Format};
use ruwsgi_proto::cache;
use ruwsgi_proto::http::{
    self, parse_head, slice, ChunkStep, ChunkedDecoder, HeaderSpan, Version, MAX_EXTENSION_BYTES,
};
use ruwsgi_proto::uwsgi::{self, parse_packet, PacketError, Parsed};
use ruwsgi_proto::Vars;

/// What a check saw, so tests can tell that the inputs reach every outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The input was accepted (a packet, a head, a complete body).
    Accepted,
    /// The input was refused.
    Rejected,
    /// More bytes were needed.
    Incomplete,
    /// The input was too short to mean anything.
    Skipped,
}

// ---------------------------------------------------------------------------------------
// uwsgi packets

/// The obvious vars-block reader: a list of pairs, or `None` for any malformed block.
fn reference_vars(block: &[u8], max_vars: usize) -> Option<Vec<(&[u8], &[u8])>> {
    let mut pairs = Vec::new();
    let mut rest = block;
    while !rest.is_empty() {
        let (key, after) = reference_item(rest)?;
        let (value, after) = reference_item(after)?;
        if key.is_empty() || pairs.len() == max_vars {
            return None;
        }
        pairs.push((key, value));
        rest = after;
    }
    Some(pairs)
}

/// One `[u16 LE len][bytes]` item and what follows it.
fn reference_item(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    if buf.len() < 2 {
        return None;
    }
    let len = usize::from(buf[0]) | usize::from(buf[1]) << 8;
    let body = &buf[2..];
    (body.len() >= len).then(|| body.split_at(len))
}

/// Round trip, limits, tiling against a reference, and split-stream equivalence.
///
/// An odd `modifier1` selects tiny limits (64-byte buffer, 3 vars) so both are reached.
pub fn check_uwsgi_packet(data: &[u8]) -> Outcome {
    let limits = match data.first() {
        Some(&b) if b & 1 == 1 => uwsgi::Limits {
            buffer_size: 64,
            max_vars: 3,
        },
        _ => uwsgi::Limits::default(),
    };
    let mut vars = Vars::new();
    let whole = parse_packet(data, &limits, &mut vars);
    let header = uwsgi::parse_header(data);
    match &whole {
        Ok(Parsed::Complete {
            header: h,
            consumed,
        }) => {
            let size = h.datasize as usize;
            assert_eq!(Some(*h), header);
            assert_eq!(*consumed, 4 + size);
            assert!(*consumed <= data.len() && size <= limits.buffer_size);
            assert!(vars.iter().all(|(k, _)| !k.is_empty()));
            // A packet without vars is told apart by its header alone.
            assert_eq!(h.is_empty(), vars.is_empty());
            let block = &data[4..*consumed];
            let want = reference_vars(block, limits.max_vars).expect("reference refused");
            assert_eq!(vars.iter().collect::<Vec<_>>(), want);
            let mut again = Vec::new();
            uwsgi::encode_packet(h.modifier1, h.modifier2, &vars, &mut again).unwrap();
            assert_eq!(again, &data[..*consumed]);
        }
        Ok(Parsed::Incomplete) => {
            assert!(vars.is_empty());
            if let Some(h) = header {
                assert!(data.len() < h.packet_len());
            }
        }
        Err(PacketError::TooLarge { size, max }) => {
            assert_eq!(*max, limits.buffer_size);
            assert!(*size > *max);
            assert_eq!(header.map(|h| h.datasize as usize), Some(*size));
        }
        Err(_) => {
            let h = header.expect("error without a header");
            let block = &data[4..h.packet_len()];
            assert!(reference_vars(block, limits.max_vars).is_none());
        }
    }
    // Arrays over the same body: tiling agrees with the reference, round trip without
    // the skipped empty items.
    if let Some(h) = header {
        if let Some(block) = data.get(4..h.packet_len()) {
            check_array(block);
        }
    }
    // Feeding a growing buffer: "incomplete" until the answer, then always the answer.
    let mut settled = false;
    for cut in cut_points(data) {
        let part = parse_packet(&data[..cut], &limits, &mut vars);
        if settled || part != Ok(Parsed::Incomplete) {
            settled = true;
            assert_eq!(part, whole, "cut {cut}");
        }
    }
    match whole {
        Ok(Parsed::Complete { .. }) => Outcome::Accepted,
        Ok(Parsed::Incomplete) => Outcome::Incomplete,
        Err(_) => Outcome::Rejected,
    }
}

fn check_array(block: &[u8]) {
    let mut items = Vec::new();
    let mut rest = block;
    let mut ok = true;
    while !rest.is_empty() {
        match reference_item(rest) {
            Some((item, after)) => {
                if !item.is_empty() {
                    items.push(item);
                }
                rest = after;
            }
            None => {
                ok = false;
                break;
            }
        }
    }
    match uwsgi::parse_array(block, usize::MAX) {
        Ok(got) => {
            assert!(ok);
            assert_eq!(got, items);
            let mut out = Vec::new();
            uwsgi::encode_array(&got, &mut out).unwrap();
            assert!(out.len() <= block.len());
            assert_eq!(uwsgi::parse_array(&out, usize::MAX).unwrap(), got);
        }
        Err(_) => assert!(!ok),
    }
}

/// Every prefix length for short inputs; a spread of them (and the end) for long ones.
fn cut_points(data: &[u8]) -> Vec<usize> {
    if data.len() <= 300 {
        return (0..=data.len()).collect();
    }
    let mut cuts: Vec<usize> = (0..=64).collect();
    cuts.extend(
        data.iter()
            .take(64)
            .map(|&b| usize::from(b) * data.len() / 256),
    );
    cuts.push(data.len() - 1);
    cuts.push(data.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

// ---------------------------------------------------------------------------------------
// HTTP heads

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn is_ctl(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

/// Re-check an accepted head with slow, independent code (rules R5–R8).
fn recheck_head(buf: &[u8], head: &http::Head, headers: &[HeaderSpan], limits: &http::Limits) {
    let raw = &buf[..head.consumed];
    assert!(raw.ends_with(b"\r\n\r\n"));
    assert!(head.consumed <= limits.max_head);
    // Lines end in CRLF only.
    for (i, &c) in raw.iter().enumerate() {
        if c == b'\n' {
            assert_eq!(raw[i - 1], b'\r');
        }
        if c == b'\r' {
            assert_eq!(raw.get(i + 1), Some(&b'\n'));
        }
    }
    let text: Vec<&[u8]> = raw.split(|&c| c == b'\n').collect();
    let lines: Vec<&[u8]> = text
        .iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .skip_while(|l| l.is_empty())
        .collect();
    // Request line: method SP target SP version.
    let parts: Vec<&[u8]> = lines[0].split(|&c| c == b' ').collect();
    assert_eq!(parts.len(), 3);
    let method_byte = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit() || b"-_.".contains(&c);
    assert!(!parts[0].is_empty() && parts[0].iter().all(|&c| method_byte(c)));
    assert_eq!(slice(buf, head.method), parts[0]);
    assert_eq!(slice(buf, head.target), parts[1]);
    assert!(parts[1].iter().all(|&c| c > 0x20 && c < 0x7f));
    let target = parts[1];
    assert!(
        target.starts_with(b"/")
            || (target == b"*" && parts[0] == b"OPTIONS")
            || target.to_ascii_lowercase().starts_with(b"http://")
            || target.to_ascii_lowercase().starts_with(b"https://")
    );
    assert_ne!(parts[0], b"CONNECT");
    let version = match parts[2] {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        other => panic!("version {other:?} accepted"),
    };
    assert_eq!(head.version, version);
    assert!(lines[0].len() <= limits.max_request_line);
    // Fields.
    let fields = &lines[1..lines.len() - 2];
    assert!(fields.len() <= limits.max_headers);
    let mut kept = Vec::new();
    let mut dropped = 0;
    let count = |name: &str| {
        fields
            .iter()
            .filter(|l| {
                let n = l.split(|&c| c == b':').next().unwrap_or(b"");
                n.eq_ignore_ascii_case(name.as_bytes())
            })
            .count()
    };
    for line in fields {
        assert!(!line.starts_with(b" ") && !line.starts_with(b"\t"));
        let colon = line.iter().position(|&c| c == b':').unwrap();
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        assert!(!name.is_empty() && name.iter().all(|&c| is_tchar(c)));
        assert!(value.iter().all(|&c| c == b'\t' || !is_ctl(c)));
        if name.contains(&b'_') {
            dropped += 1;
        } else {
            let ows = |c: &u8| *c == b' ' || *c == b'\t';
            let a = value.iter().position(|c| !ows(c)).unwrap_or(value.len());
            let b = value.iter().rposition(|c| !ows(c)).map_or(a, |i| i + 1);
            kept.push((name.to_vec(), value[a..b].to_vec()));
        }
    }
    assert_eq!(head.dropped_underscore, dropped);
    assert_eq!(headers.len(), kept.len());
    for (h, (name, value)) in headers.iter().zip(&kept) {
        assert_eq!(h.name_in(buf), &name[..]);
        assert_eq!(h.value_in(buf), &value[..]);
    }
    assert!(count("host") <= 1 && count("content-type") <= 1 && count("content-length") <= 1);
    let cl = count("content-length");
    let te = count("transfer-encoding");
    assert!(cl == 0 || te == 0);
    match head.framing {
        http::BodyFraming::Chunked => assert!(te > 0 && version == Version::Http11),
        http::BodyFraming::Length(_) => assert_eq!(cl, 1),
        http::BodyFraming::None => assert_eq!(cl + te, 0),
    }
}

/// Incremental equivalence, allowed statuses, and an independent re-check of accepted heads.
///
/// The first byte chooses the limits (odd: tiny limits, so 414/431 are reached; bit 1:
/// strict Host); the rest is the request.
pub fn check_http_head(data: &[u8]) -> Outcome {
    let Some((&selector, data)) = data.split_first() else {
        return Outcome::Skipped;
    };
    let limits = match selector {
        b if b & 1 == 1 => http::Limits {
            max_request_line: 48,
            max_head: 160,
            max_headers: 4,
            strict_host: b & 2 == 2,
        },
        _ => http::Limits::default(),
    };
    let mut headers = Vec::new();
    let whole = parse_head(data, &limits, &mut headers);
    match &whole {
        Ok(Some(head)) => recheck_head(data, head, &headers, &limits),
        Ok(None) => assert!(data.len() <= limits.max_buffer()),
        Err(e) => assert!([400, 414, 431, 501, 505].contains(&e.status()), "{e}"),
    }
    let whole_headers = headers.clone();
    let mut settled = false;
    for cut in cut_points(data) {
        let part = parse_head(&data[..cut], &limits, &mut headers);
        if settled || part != Ok(None) {
            settled = true;
            assert_eq!(part, whole, "cut {cut}");
            if whole.is_ok() {
                assert_eq!(headers, whole_headers);
            }
        }
    }
    match whole {
        Ok(Some(_)) => Outcome::Accepted,
        Ok(None) => Outcome::Incomplete,
        Err(_) => Outcome::Rejected,
    }
}

// ---------------------------------------------------------------------------------------
// Chunked bodies

/// What the reference decoder concluded, with the body bytes it read before that.
#[derive(Debug, PartialEq, Eq)]
enum Reference {
    Done(Vec<u8>, usize),
    Error(Vec<u8>),
    Incomplete(Vec<u8>),
}

fn qd_or_pair_byte(c: u8) -> bool {
    c == b'\t' || !is_ctl(c)
}

/// `s` without its leading SP / HTAB.
fn skip_bws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
    &s[n..]
}

/// `*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )`, BWS = *( SP / HTAB ).
fn valid_extensions(mut rest: &[u8]) -> bool {
    let token_len = |s: &[u8]| s.iter().take_while(|&&c| is_tchar(c)).count();
    while !rest.is_empty() {
        let Some(r) = skip_bws(rest).strip_prefix(b";") else {
            return false;
        };
        let r = skip_bws(r);
        let n = token_len(r);
        if n == 0 {
            return false;
        }
        rest = &r[n..];
        let Some(v) = skip_bws(rest).strip_prefix(b"=") else {
            continue;
        };
        let v = skip_bws(v);
        if let Some(q) = v.strip_prefix(b"\"") {
            let mut i = 0;
            loop {
                match q.get(i) {
                    Some(b'"') => break,
                    Some(b'\\') if q.get(i + 1).is_some_and(|&c| qd_or_pair_byte(c)) => i += 2,
                    Some(&c) if c != b'\\' && qd_or_pair_byte(c) => i += 1,
                    _ => return false,
                }
            }
            rest = &q[i + 1..];
        } else {
            let n = token_len(v);
            if n == 0 {
                return false;
            }
            rest = &v[n..];
        }
    }
    true
}

/// A chunked decoder written straight from RFC 9112 §7.1, over the whole input at once.
fn reference_chunked(input: &[u8], max_trailer: usize) -> Reference {
    let find_crlf = |from: usize| {
        input[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| from + i)
    };
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(end) = find_crlf(pos) else {
            return Reference::Incomplete(body);
        };
        let line = &input[pos..end];
        // The size is the leading hex digits; everything after them is extension text.
        let size_len = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
        let (size, ext) = line.split_at(size_len);
        if size.is_empty()
            || size.len() > 16
            || !size.iter().all(u8::is_ascii_hexdigit)
            || ext.len() > MAX_EXTENSION_BYTES
            || !valid_extensions(ext)
        {
            return Reference::Error(body);
        }
        let size = u64::from_str_radix(std::str::from_utf8(size).unwrap(), 16).unwrap();
        pos = end + 2;
        if size == 0 {
            break;
        }
        let available = (input.len() - pos) as u64;
        if available < size {
            body.extend_from_slice(&input[pos..]);
            return Reference::Incomplete(body);
        }
        body.extend_from_slice(&input[pos..pos + size as usize]);
        pos += size as usize;
        match input.get(pos..pos + 2) {
            Some(b"\r\n") => pos += 2,
            Some(_) => return Reference::Error(body),
            None if b"\r".starts_with(&input[pos..]) => return Reference::Incomplete(body),
            None => return Reference::Error(body),
        }
    }
    let start = pos;
    loop {
        let Some(end) = find_crlf(pos) else {
            return if input.len() - start > max_trailer {
                Reference::Error(body)
            } else {
                Reference::Incomplete(body)
            };
        };
        if end + 2 - start > max_trailer {
            return Reference::Error(body);
        }
        let line = &input[pos..end];
        if line.is_empty() {
            return Reference::Done(body, end + 2);
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            return Reference::Error(body);
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let forbidden = ["content-length", "transfer-encoding", "host"]
            .iter()
            .any(|f| name.eq_ignore_ascii_case(f.as_bytes()));
        if name.is_empty()
            || !name.iter().all(|&c| is_tchar(c))
            || forbidden
            || !value.iter().all(|&c| qd_or_pair_byte(c))
        {
            return Reference::Error(body);
        }
        pos = end + 2;
    }
}

/// Run the real decoder over `parts` in sequence.
fn run_decoder(parts: &[&[u8]], max_trailer: usize) -> (Vec<u8>, Result<Option<usize>, ()>) {
    let mut decoder = ChunkedDecoder::new(max_trailer);
    let mut body = Vec::new();
    let mut used = 0;
    for part in parts {
        let mut input = *part;
        loop {
            match decoder.decode(input) {
                Err(_) => return (body, Err(())),
                Ok((n, step)) => {
                    assert!(n <= input.len());
                    used += n;
                    match step {
                        ChunkStep::Data(s) => {
                            assert!(s.0 < s.1 && s.1 as usize == n);
                            body.extend_from_slice(slice(input, s));
                        }
                        ChunkStep::NeedMore => {
                            assert_eq!(n, input.len());
                            break;
                        }
                        ChunkStep::Done => {
                            assert_eq!(decoder.body_len(), body.len() as u64);
                            return (body, Ok(Some(used)));
                        }
                    }
                    input = &input[n..];
                }
            }
        }
    }
    assert_eq!(decoder.body_len(), body.len() as u64);
    (body, Ok(None))
}

/// Differential test of [`ChunkedDecoder`] against the reference. The first two bytes choose
/// where the body is split, the third the trailer limit (times 4); the rest is the body.
pub fn check_chunked(data: &[u8]) -> Outcome {
    let (cuts, input) = match data {
        [a, b, c, rest @ ..] => ([*a, *b], (*c, rest)),
        _ => return Outcome::Skipped,
    };
    let (max_trailer_seed, input) = input;
    let max_trailer = usize::from(max_trailer_seed) * 4;
    let mut points = [
        usize::from(cuts[0]) * input.len() / 256,
        usize::from(cuts[1]) * input.len() / 256,
    ];
    points.sort_unstable();
    let parts = [
        &input[..points[0]],
        &input[points[0]..points[1]],
        &input[points[1]..],
    ];
    let whole = run_decoder(&[input], max_trailer);
    assert_eq!(run_decoder(&parts, max_trailer), whole, "split {points:?}");
    assert!(whole.0.len() <= input.len());
    match reference_chunked(input, max_trailer) {
        Reference::Done(body, used) => assert_eq!(whole, (body, Ok(Some(used)))),
        Reference::Error(body) => assert_eq!(whole, (body, Err(()))),
        Reference::Incomplete(body) => {
            assert_eq!(whole.0, body);
            match whole.1 {
                Ok(None) => {}
                // Refused early, on a line the reference has not seen the end of yet: no
                // ending may make it acceptable.
                Err(()) => {
                    for suffix in [
                        &b"\r\n"[..],
                        b"\r\n0\r\n\r\n",
                        b"\r\n\r\n",
                        b"\"\r\n0\r\n\r\n",
                    ] {
                        let longer = [input, suffix].concat();
                        assert!(!matches!(
                            reference_chunked(&longer, max_trailer),
                            Reference::Done(..)
                        ));
                    }
                }
                Ok(Some(_)) => panic!("decoder finished, reference incomplete"),
            }
        }
    }
    match whole.1 {
        Ok(Some(_)) => Outcome::Accepted,
        Ok(None) => Outcome::Incomplete,
        Err(()) => Outcome::Rejected,
    }
}

// ---------------------------------------------------------------------------------------
// cache packets (modifier1 111)

/// The cache codec against the reference dict reader: a magic request is accepted exactly
/// when its dict is well formed (at most [`cache::MAX_DICT_PAIRS`] pairs), names a known
/// `cmd`, has a key (unless `clear`) and, for `set`/`update`, a decimal `size` in
/// `1..=max_value`; the last value of a repeated key wins; re-encoding what was decoded and
/// decoding it again gives the same request (`expires` aside for commands without a value). The other body decoders (reply dict, dict
/// command, simple set array) must agree with the reference on well-formedness.
///
/// The first byte sets `max_value` (`byte * 4`); the rest is a packet (header + body).
pub fn check_cache_packet(data: &[u8]) -> Outcome {
    let Some((&sel, packet)) = data.split_first() else {
        return Outcome::Skipped;
    };
    let max_value = usize::from(sel) * 4;
    let (_, body) = match uwsgi::parse_frame(packet, uwsgi::MAX_DATASIZE) {
        Ok(Some(frame)) => frame,
        Ok(None) => return Outcome::Incomplete,
        Err(e) => panic!("no frame can exceed 65535 bytes: {e}"),
    };
    let reference = reference_vars(body, cache::MAX_DICT_PAIRS);
    if reference.is_none() {
        assert!(cache::parse_magic_reply(body).is_err());
        assert!(cache::parse_dict_command(body).is_err());
    }
    if let Ok((key, value)) = cache::parse_simple_set(body) {
        assert!(!key.is_empty() && !value.is_empty());
    }
    let got = cache::parse_magic_request(body, max_value);
    let Some(pairs) = reference else {
        assert!(got.is_err(), "malformed dict accepted: {got:?}");
        return Outcome::Rejected;
    };
    let last = |name: &[u8]| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    };
    let cmd = match last(b"cmd") {
        Some(b"get") => Some(cache::Command::Get),
        Some(b"set") => Some(cache::Command::Set),
        Some(b"update") => Some(cache::Command::Update),
        Some(b"del") => Some(cache::Command::Del),
        Some(b"exists") => Some(cache::Command::Exists),
        Some(b"clear") => Some(cache::Command::Clear),
        _ => None,
    };
    let key = last(b"key").unwrap_or(b"");
    let size = last(b"size").and_then(|v| {
        let digits = !v.is_empty() && v.len() <= 20 && v.iter().all(u8::is_ascii_digit);
        digits
            .then(|| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
            .flatten()
    });
    let want_ok = match cmd {
        None => false,
        Some(c) if c != cache::Command::Clear && key.is_empty() => false,
        Some(c) if c.has_value() => matches!(size, Some(n) if n > 0 && n <= max_value as u64),
        Some(_) => true,
    };
    let req = match got {
        Ok(req) => req,
        Err(e) => {
            assert!(!want_ok, "well-formed request refused: {e}");
            return Outcome::Rejected;
        }
    };
    assert!(want_ok, "request accepted against the rules: {req:?}");
    assert_eq!(Some(req.cmd), cmd);
    assert_eq!(req.key, key);
    assert_eq!(req.cache, last(b"cache").unwrap_or(b""));
    // round trip
    let value = vec![b'v'; req.size];
    let call = cache::MagicCall {
        cmd: req.cmd,
        key: req.key,
        value: &value,
        expires: req.expires,
        cache: req.cache,
        keep: req.keep,
    };
    let mut out = Vec::new();
    cache::encode_magic_request(&call, &mut out).expect("a decoded request re-encodes");
    let (_, again_body) = uwsgi::parse_frame(&out, uwsgi::MAX_DATASIZE)
        .unwrap()
        .unwrap();
    let again = cache::parse_magic_request(again_body, max_value).unwrap();
    // `expires` is only sent with a value (the other commands ignore it).
    let expires = if req.cmd.has_value() { req.expires } else { 0 };
    assert_eq!(again, cache::MagicRequest { expires, ..req });
    assert_eq!(&out[4 + again_body.len()..], &value[..]);
    Outcome::Accepted
}

#[cfg(test)]
mod tests;

// ---------------------------------------------------------------------------------------
// vars blocks

/// A bare vars block (the body of modifier1 0 and 17 packets, spool files, RPC arrays'
/// cousins): accepted exactly when the reference reader accepts it, with the same pairs in
/// order, and `encode_vars` gives the block back byte for byte.
///
/// The first byte is the `max_vars` limit (0 means the default 128).
pub fn check_uwsgi_vars(data: &[u8]) -> Outcome {
    let Some((&limit, block)) = data.split_first() else {
        return Outcome::Skipped;
    };
    let max_vars = if limit == 0 { 128 } else { usize::from(limit) };
    let limits = uwsgi::Limits {
        buffer_size: 65535,
        max_vars,
    };
    let mut vars = Vars::new();
    let parsed = uwsgi::parse_vars(block, &limits, &mut vars);
    let reference = reference_vars(block, max_vars);
    match (parsed, reference) {
        (Ok(()), Some(pairs)) => {
            let got: Vec<(&[u8], &[u8])> = vars.iter().collect();
            assert_eq!(got, pairs, "parse_vars and the reference disagree");
            let mut again = Vec::new();
            uwsgi::encode_vars(&vars, &mut again).expect("a parsed block encodes");
            assert_eq!(again, block, "encode(parse(block)) != block");
            Outcome::Accepted
        }
        (Err(_), None) => {
            assert!(vars.is_empty(), "a refused block left vars behind");
            Outcome::Rejected
        }
        (Ok(()), None) => panic!("parse_vars accepted a block the reference refuses"),
        (Err(e), Some(_)) => panic!("parse_vars refused a valid block: {e:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// configuration files

/// The configuration parsers (`ini`, `yaml`, `json`, `toml`), on any text: they return
/// entries or a syntax error, never panic; entry keys are non-empty and trimmed; line
/// numbers are within the text. For ini, writing the entries back as `key = value` lines
/// and parsing again gives the same keys and values.
///
/// The first byte picks the format (its value modulo 4); the rest is the text (bytes that
/// are not UTF-8 are replaced, as a file read lossily would be).
pub fn check_config(data: &[u8]) -> Outcome {
    let Some((&pick, rest)) = data.split_first() else {
        return Outcome::Skipped;
    };
    let format = match pick % 4 {
        0 => Format::Ini,
        1 => Format::Yaml,
        2 => Format::Json,
        _ => Format::Toml,
    };
    let text = String::from_utf8_lossy(rest);
    let lines = text.split('\n').count();
    let parsed = match formats::parse(format, &text, "uwsgi") {
        Ok(p) => p,
        Err(e) => {
            if let Some(line) = e.line {
                assert!(line >= 1 && line <= lines, "error line {line} of {lines}");
            }
            assert!(!e.message.is_empty(), "a syntax error without a message");
            return Outcome::Rejected;
        }
    };
    for entry in &parsed.entries {
        assert!(!entry.key.is_empty(), "an empty key was accepted");
        if let Some(line) = entry.line {
            assert!(line >= 1 && line <= lines, "entry line {line} of {lines}");
        }
    }
    if format == Format::Ini {
        let mut written = String::from("[uwsgi]\n");
        for e in &parsed.entries {
            written.push_str(&format!("{} = {}\n", e.key, e.value));
        }
        let again = formats::parse(Format::Ini, &written, "uwsgi").expect("ini never fails");
        let pairs = |p: &formats::Parsed| -> Vec<(String, String)> {
            p.entries
                .iter()
                .map(|e| (e.key.clone(), e.value.clone()))
                .collect()
        };
        assert_eq!(
            pairs(&again),
            pairs(&parsed),
            "ini entries do not round-trip"
        );
    }
    Outcome::Accepted
}
