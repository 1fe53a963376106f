use super::*;

fn vars_of(pairs: &[(&[u8], &[u8])]) -> Vars {
    let mut v = Vars::new();
    for (k, val) in pairs {
        v.push(k, val);
    }
    v
}

fn packet(m1: u8, m2: u8, block: &[u8]) -> Vec<u8> {
    let mut p = vec![m1, 0, 0, m2];
    p[1..3].copy_from_slice(&(block.len() as u16).to_le_bytes());
    p.extend_from_slice(block);
    p
}

fn item(bytes: &[u8]) -> Vec<u8> {
    let mut v = (bytes.len() as u16).to_le_bytes().to_vec();
    v.extend_from_slice(bytes);
    v
}

fn pair(k: &[u8], v: &[u8]) -> Vec<u8> {
    let mut out = item(k);
    out.extend(item(v));
    out
}

#[test]
fn header_is_little_endian() {
    assert_eq!(parse_header(b"\x00\x01"), None);
    let h = parse_header(&[7, 0x34, 0x12, 9, 0xff]).unwrap();
    assert_eq!(
        h,
        PacketHeader {
            modifier1: 7,
            datasize: 0x1234,
            modifier2: 9
        }
    );
    assert_eq!(h.to_bytes(), [7, 0x34, 0x12, 9]);
    assert_eq!(h.packet_len(), 4 + 0x1234);
}

#[test]
fn round_trip_request_packet() {
    let vars = vars_of(&[
        (b"REQUEST_METHOD", b"GET"),
        (b"PATH_INFO", b"/x"),
        (b"EMPTY", b""),
        (b"PATH_INFO", b"/dup"),
    ]);
    let mut wire = Vec::new();
    encode_packet(0, 0, &vars, &mut wire).unwrap();
    wire.extend_from_slice(b"body bytes");
    let mut out = Vars::new();
    let parsed = parse_packet(&wire, &Limits::default(), &mut out).unwrap();
    let Parsed::Complete { header, consumed } = parsed else {
        panic!("incomplete")
    };
    assert_eq!(consumed, wire.len() - 10);
    assert_eq!(header.modifier1, 0);
    assert_eq!(out.len(), 4);
    assert_eq!(out.get(b"PATH_INFO"), Some(&b"/dup"[..]));
    let mut again = Vec::new();
    encode_packet(header.modifier1, header.modifier2, &out, &mut again).unwrap();
    assert_eq!(again, wire[..consumed]);
}

#[test]
fn empty_block_is_a_valid_request() {
    let mut out = Vars::new();
    out.push(b"stale", b"x");
    let r = parse_packet(&[0, 0, 0, 0], &Limits::default(), &mut out).unwrap();
    assert_eq!(
        r,
        Parsed::Complete {
            header: PacketHeader {
                modifier1: 0,
                datasize: 0,
                modifier2: 0
            },
            consumed: 4
        }
    );
    assert!(out.is_empty());
}

#[test]
fn empty_packet_is_visible_to_the_caller() {
    // A bare header, with request-body bytes after it: complete, no vars, datasize 0.
    let mut out = Vars::new();
    for m1 in [modifier::REQUEST, modifier::REQUEST_PATH_INFO] {
        let wire = [m1, 0, 0, 0, b'x', b'y'];
        let r = parse_packet(&wire, &Limits::default(), &mut out).unwrap();
        let Parsed::Complete { header, consumed } = r else {
            panic!("incomplete")
        };
        assert!(header.is_empty());
        assert_eq!((header.datasize, consumed), (0, 4));
        assert!(out.is_empty());
    }
    // One var is enough not to be empty.
    let wire = packet(0, 0, &pair(b"K", b""));
    let Parsed::Complete { header, .. } =
        parse_packet(&wire, &Limits::default(), &mut out).unwrap()
    else {
        panic!("incomplete")
    };
    assert!(!header.is_empty());
    assert_eq!(out.len(), 1);
}

#[test]
fn modifier_names() {
    use modifier::*;
    let named = [
        (REQUEST, 0),
        (PSGI, 5),
        (ADMIN, 10),
        (SPOOLER, 17),
        (EVAL, 22),
        (REQUEST_PATH_INFO, 30),
        (HTTP_RESPONSE, 72),
        (PING, 100),
        (ECHO, 101),
        (SIGNAL, 110),
        (CACHE, 111),
        (RPC, 173),
        (SUBSCRIPTION, 224),
        (RESPONSE, 255),
    ];
    for (name, value) in named {
        assert_eq!(name, value);
        assert!(describe(name).is_some(), "{name}");
    }
    // A raw HTTP response read as a uwsgi header.
    assert_eq!(
        parse_header(b"HTTP/1.1 200 OK").unwrap().modifier1,
        HTTP_RESPONSE
    );
    for m in 0..=255u8 {
        assert_eq!(is_wsgi_request(m), m == 0 || m == 30, "{m}");
    }
    for unlisted in [
        4, 12, 13, 16, 20, 21, 29, 34, 36, 47, 49, 94, 102, 112, 172, 199, 254,
    ] {
        assert_eq!(describe(unlisted), None, "{unlisted}");
    }
}

#[test]
fn every_prefix_is_incomplete() {
    let mut block = pair(b"A", b"1");
    block.extend(pair(b"BB", b""));
    let wire = packet(0, 0, &block);
    let mut out = Vars::new();
    let limits = Limits::default();
    for cut in 0..wire.len() {
        assert_eq!(
            parse_packet(&wire[..cut], &limits, &mut out),
            Ok(Parsed::Incomplete),
            "cut {cut}"
        );
    }
    assert!(matches!(
        parse_packet(&wire, &limits, &mut out),
        Ok(Parsed::Complete { consumed, .. }) if consumed == wire.len()
    ));
}

#[test]
fn too_large_is_refused_from_the_header_alone() {
    let limits = Limits {
        buffer_size: 100,
        max_vars: 128,
    };
    let mut out = Vars::new();
    assert_eq!(
        parse_packet(&[0, 101, 0, 0], &limits, &mut out),
        Err(PacketError::TooLarge {
            size: 101,
            max: 100
        })
    );
    // Exactly the limit is fine (and incomplete).
    assert_eq!(
        parse_packet(&[0, 100, 0, 0], &limits, &mut out),
        Ok(Parsed::Incomplete)
    );
    assert_eq!(
        PacketError::TooLarge {
            size: 101,
            max: 100
        }
        .to_string(),
        "invalid request block size: 101 (max 100)"
    );
}

#[test]
fn malformed_blocks() {
    let limits = Limits::default();
    let cases: &[(&[u8], PacketError)] = &[
        (b"\x00\x00\x00\x00", PacketError::ZeroKey),
        (b"\x05\x00ab", PacketError::Overrun),
        (b"\x01\x00a", PacketError::Overrun),
        (b"\x01\x00a\x00", PacketError::Overrun),
        (b"\x01\x00a\x05\x00xy", PacketError::Overrun),
        (b"\x01\x00a\x00\x00\x07", PacketError::Trailing),
        (b"\x01", PacketError::Trailing),
    ];
    let mut out = Vars::new();
    for (block, want) in cases {
        assert_eq!(
            parse_vars(block, &limits, &mut out).as_ref(),
            Err(want),
            "{block:?}"
        );
        assert!(out.is_empty());
        let wire = packet(0, 0, block);
        assert_eq!(parse_packet(&wire, &limits, &mut out).as_ref(), Err(want));
    }
}

#[test]
fn max_vars_is_enforced() {
    let limits = Limits {
        buffer_size: 65535,
        max_vars: 3,
    };
    let mut block = Vec::new();
    for _ in 0..3 {
        block.extend(pair(b"K", b"v"));
    }
    let mut out = Vars::new();
    parse_vars(&block, &limits, &mut out).unwrap();
    assert_eq!(out.len(), 3);
    block.extend(pair(b"K", b"v"));
    assert_eq!(
        parse_vars(&block, &limits, &mut out),
        Err(PacketError::TooManyVars { max: 3 })
    );
}

#[test]
fn default_limit_accepts_128_vars_not_129() {
    let limits = Limits {
        buffer_size: 65535,
        max_vars: Limits::default().max_vars,
    };
    let mut block = Vec::new();
    for _ in 0..128 {
        block.extend(pair(b"K", b""));
    }
    let mut out = Vars::new();
    assert!(parse_vars(&block, &limits, &mut out).is_ok());
    block.extend(pair(b"K", b""));
    assert!(parse_vars(&block, &limits, &mut out).is_err());
}

#[test]
fn encode_refuses_what_cannot_be_framed() {
    let big = vec![b'x'; 65536];
    let mut out = Vec::new();
    assert_eq!(
        encode_vars(&vars_of(&[(b"K", &big)]), &mut out),
        Err(PacketError::ItemTooLong)
    );
    assert_eq!(
        encode_vars(&vars_of(&[(b"", b"v")]), &mut out),
        Err(PacketError::ZeroKey)
    );
    let half = vec![b'x'; 40000];
    assert_eq!(
        encode_packet(0, 0, &vars_of(&[(b"A", &half), (b"B", &half)]), &mut out),
        Err(PacketError::BlockTooLarge { size: 80010 })
    );
    assert!(out.is_empty());
    // The largest packet fits exactly.
    let max_val = vec![b'y'; 65535 - 5];
    encode_packet(0, 0, &vars_of(&[(b"K", &max_val)]), &mut out).unwrap();
    assert_eq!(out.len(), 4 + 65535);
    let mut back = Vars::new();
    let limits = Limits {
        buffer_size: 65535,
        max_vars: 1,
    };
    assert!(matches!(
        parse_packet(&out, &limits, &mut back),
        Ok(Parsed::Complete {
            consumed: 65539,
            ..
        })
    ));
}

#[test]
fn rpc_example_from_the_reference() {
    let wire = b"\xAD\x0E\x00\x00\x05\x00hello\x05\x00world";
    let (h, body) = parse_frame(wire, 4096).unwrap().unwrap();
    assert_eq!(h.modifier1, modifier::RPC);
    let items = parse_array(body, 255).unwrap();
    assert_eq!(items, vec![&b"hello"[..], &b"world"[..]]);
    let mut out = Vec::new();
    encode_array(&items, &mut out).unwrap();
    assert_eq!(out, body);
}

#[test]
fn array_skips_empty_items() {
    let mut block = item(b"fn");
    block.extend(item(b""));
    block.extend(item(b"arg"));
    assert_eq!(
        parse_array(&block, 2).unwrap(),
        vec![&b"fn"[..], &b"arg"[..]]
    );
    assert_eq!(parse_array(b"", 0).unwrap(), Vec::<&[u8]>::new());
}

#[test]
fn array_errors() {
    assert_eq!(parse_array(b"\x01", 9), Err(PacketError::Trailing));
    assert_eq!(parse_array(b"\x03\x00ab", 9), Err(PacketError::Overrun));
    let mut block = item(b"a");
    block.extend(item(b"b"));
    assert_eq!(
        parse_array(&block, 1),
        Err(PacketError::TooManyItems { max: 1 })
    );
    let big = vec![0u8; 65536];
    let mut out = Vec::new();
    assert_eq!(
        encode_array(&[&big], &mut out),
        Err(PacketError::ItemTooLong)
    );
    let half = vec![0u8; 40000];
    assert_eq!(
        encode_array(&[&half, &half], &mut out),
        Err(PacketError::BlockTooLarge { size: 80004 })
    );
}

#[test]
fn array_round_trip_without_empty_items() {
    let items: Vec<&[u8]> = vec![b"a", b"\x00\x01", b"longer item", b"\xff"];
    let mut out = Vec::new();
    encode_array(&items, &mut out).unwrap();
    assert_eq!(parse_array(&out, 255).unwrap(), items);
}
