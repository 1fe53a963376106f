use super::*;

fn call<'a>(cmd: Command, key: &'a [u8], value: &'a [u8]) -> MagicCall<'a> {
    MagicCall {
        cmd,
        key,
        value,
        expires: 0,
        cache: b"",
        keep: false,
    }
}

#[test]
fn magic_get_matches_the_documented_bytes() {
    let mut out = Vec::new();
    encode_magic_request(&call(Command::Get, b"foo", b""), &mut out).unwrap();
    let mut want = vec![0x6F, 0x14, 0x00, 0x11];
    want.extend_from_slice(b"\x03\x00cmd\x03\x00get\x03\x00key\x03\x00foo");
    assert_eq!(out, want);
    let req = parse_magic_request(&out[4..], 100).unwrap();
    assert_eq!(
        (req.cmd, req.key, req.cache),
        (Command::Get, &b"foo"[..], &b""[..])
    );

    // the documented hit reply
    let mut reply = Vec::new();
    encode_ok_reply(Some((3, 0)), &mut reply);
    reply.extend_from_slice(b"bar");
    let mut want = vec![0x6F, 0x15, 0x00, 0x11];
    want.extend_from_slice(b"\x06\x00status\x02\x00ok\x04\x00size\x01\x003bar");
    assert_eq!(reply, want);
    let n = parse_reply_head([reply[0], reply[1], reply[2], reply[3]]).unwrap();
    assert_eq!(n, 0x15);
    let r = parse_magic_reply(&reply[4..4 + n]).unwrap();
    assert_eq!(
        r,
        MagicReply {
            ok: true,
            size: 3,
            expires_at: 0
        }
    );
}

#[test]
fn set_carries_size_expires_cache_and_the_value() {
    let mut out = Vec::new();
    let c = MagicCall {
        expires: 30,
        cache: b"shared",
        keep: true,
        ..call(Command::Set, b"k", b"value")
    };
    encode_magic_request(&c, &mut out).unwrap();
    assert!(out.ends_with(b"value"));
    let dict = &out[4..out.len() - 5];
    assert_eq!(u16::from_le_bytes([out[1], out[2]]) as usize, dict.len());
    let req = parse_magic_request(dict, 5).unwrap();
    assert_eq!(req.cmd, Command::Set);
    assert_eq!((req.key, req.size, req.expires), (&b"k"[..], 5, 30));
    assert_eq!(req.cache, b"shared");
    assert!(req.keep);
    // the size limit is checked on the dict alone
    assert_eq!(parse_magic_request(dict, 4), Err(CacheProtoError::BadSize));
}

#[test]
fn request_errors() {
    let mut out = Vec::new();
    assert_eq!(
        encode_magic_request(&call(Command::Get, b"", b""), &mut out),
        Err(CacheProtoError::NoKey)
    );
    assert_eq!(
        encode_magic_request(&call(Command::Update, b"k", b""), &mut out),
        Err(CacheProtoError::BadSize)
    );
    let long = vec![b'k'; 70000];
    assert!(encode_magic_request(&call(Command::Get, &long, b""), &mut out).is_err());
    assert!(out.is_empty(), "nothing written on error");
    // clear needs no key
    encode_magic_request(&call(Command::Clear, b"", b""), &mut out).unwrap();
    assert_eq!(
        parse_magic_request(&out[4..], 1).unwrap().cmd,
        Command::Clear
    );

    let dict = |pairs: &[(&[u8], &[u8])]| {
        let mut d = Vec::new();
        for (k, v) in pairs {
            put(&mut d, k);
            put(&mut d, v);
        }
        d
    };
    assert_eq!(
        parse_magic_request(&dict(&[(b"cmd", b"nope"), (b"key", b"k")]), 9),
        Err(CacheProtoError::UnknownCommand)
    );
    assert_eq!(
        parse_magic_request(&dict(&[(b"key", b"k")]), 9),
        Err(CacheProtoError::UnknownCommand)
    );
    assert_eq!(
        parse_magic_request(&dict(&[(b"cmd", b"get")]), 9),
        Err(CacheProtoError::NoKey)
    );
    for size in [&b"0"[..], b"", b"-1", b"1x", b"99999999999999999999999"] {
        assert_eq!(
            parse_magic_request(
                &dict(&[(b"cmd", b"set"), (b"key", b"k"), (b"size", size)]),
                9
            ),
            Err(CacheProtoError::BadSize),
            "{size:?}"
        );
    }
    // a bad expires counts as "never"; unknown keys are ignored
    let d = dict(&[
        (b"cmd", b"update"),
        (b"key", b"k"),
        (b"size", b"2"),
        (b"expires", b"-5"),
        (b"other", b"x"),
    ]);
    let r = parse_magic_request(&d, 9).unwrap();
    assert_eq!((r.size, r.expires, r.keep), (2, 0, false));
    // malformed dicts
    assert!(parse_magic_request(&[3, 0, b'c', b'm'], 9).is_err());
    assert!(parse_magic_request(&[0, 0, 0, 0], 9).is_err());
    assert!(parse_magic_request(&[1], 9).is_err());
    let many: Vec<(&[u8], &[u8])> = vec![(b"x", b"y"); MAX_DICT_PAIRS + 1];
    assert!(matches!(
        parse_magic_request(&dict(&many), 9),
        Err(CacheProtoError::Packet(PacketError::TooManyVars { .. }))
    ));
}

#[test]
fn replies() {
    let mut out = Vec::new();
    encode_ok_reply(Some((10, 1_800_000_000)), &mut out);
    let r = parse_magic_reply(&out[4..]).unwrap();
    assert_eq!((r.ok, r.size, r.expires_at), (true, 10, 1_800_000_000));
    out.clear();
    encode_ok_reply(None, &mut out);
    assert_eq!(out, b"\x6f\x0c\x00\x11\x06\x00status\x02\x00ok");
    out.clear();
    encode_failed_reply(&mut out);
    let r = parse_magic_reply(&out[4..]).unwrap();
    assert!(!r.ok);
    assert_eq!(
        parse_reply_head([173, 0, 0, 0]),
        Err(CacheProtoError::NotAReply(173, 0))
    );
    assert_eq!(
        parse_reply_head([111, 0, 0, 0]),
        Err(CacheProtoError::NotAReply(111, 0))
    );
    assert_eq!(
        parse_magic_reply(b"\x04\x00size\x01\x00x"),
        Err(CacheProtoError::BadNumber)
    );
}

#[test]
fn simple_commands() {
    let mut body = Vec::new();
    uwsgi::encode_array(&[b"key", b"value"], &mut body).unwrap();
    assert_eq!(parse_simple_set(&body), Ok((&b"key"[..], &b"value"[..])));
    body.clear();
    uwsgi::encode_array(&[b"key"], &mut body).unwrap();
    assert_eq!(parse_simple_set(&body), Err(CacheProtoError::NoValue));
    body.clear();
    uwsgi::encode_array(&[b"a", b"b", b"c", b"d"], &mut body).unwrap();
    assert!(parse_simple_set(&body).is_err());

    let mut d = Vec::new();
    for (k, v) in [
        (&b"key"[..], &b"a"[..]),
        (b"x", b"y"),
        (b"get", b"b"),
        (b"get", b""),
    ] {
        put(&mut d, k);
        put(&mut d, v);
    }
    assert_eq!(
        parse_dict_command(&d).unwrap(),
        [DictLookup::Key(b"a"), DictLookup::Get(b"b")]
    );

    assert_eq!(simple_get_head(3), Some([111, 3, 0, 0]));
    assert_eq!(simple_get_head(65535), Some([111, 0xff, 0xff, 0]));
    assert_eq!(simple_get_head(65536), None);
    assert_eq!(stream_head(true), [111, 0, 0, 1]);
    assert_eq!(stream_head(false), [111, 0, 0, 0]);
    assert!(HTTP_NOT_FOUND.starts_with(b"HTTP/1.0 404 "));
}
