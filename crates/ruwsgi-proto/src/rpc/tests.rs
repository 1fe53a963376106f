use super::*;

#[test]
fn call_matches_the_documented_bytes() {
    let mut out = Vec::new();
    encode_call(b"hello", &[b"world"], &mut out).unwrap();
    assert_eq!(
        out,
        [
            0xAD, 0x0E, 0x00, 0x00, 0x05, 0x00, b'h', b'e', b'l', b'l', b'o', 0x05, 0x00, b'w',
            b'o', b'r', b'l', b'd'
        ]
    );
    let call = parse_call(&out[4..]).unwrap();
    assert_eq!(call.name, b"hello");
    assert_eq!(call.args, [b"world"]);
}

#[test]
fn empty_arguments_are_dropped_by_the_server() {
    let mut out = Vec::new();
    encode_call(b"f", &[b"", b"x", b""], &mut out).unwrap();
    let call = parse_call(&out[4..]).unwrap();
    assert_eq!(call.args, [b"x"]);
}

#[test]
fn call_limits() {
    let mut out = Vec::new();
    assert_eq!(encode_call(b"", &[], &mut out), Err(RpcError::NoFunction));
    let long = vec![b'a'; 256];
    assert_eq!(
        encode_call(&long, &[], &mut out),
        Err(RpcError::NameTooLong { len: 256 })
    );
    encode_call(&long[..255], &[], &mut out).unwrap();
    out.clear();
    let args = vec![&b"a"[..]; 255];
    assert_eq!(
        encode_call(b"f", &args, &mut out),
        Err(RpcError::TooManyArgs { count: 255 })
    );
    encode_call(b"f", &args[..254], &mut out).unwrap();
    assert_eq!(parse_call(&out[4..]).unwrap().args.len(), 254);
    out.clear();
    let big = vec![b'x'; 65000];
    assert!(matches!(
        encode_call(b"f", &[&big, &big[..1000]], &mut out),
        Err(RpcError::Packet(PacketError::BlockTooLarge { .. }))
    ));
    assert!(out.is_empty(), "nothing written on error");
}

#[test]
fn malformed_calls_are_refused() {
    assert_eq!(parse_call(b""), Err(RpcError::NoFunction));
    // only empty items: no name either
    assert_eq!(parse_call(&[0, 0, 0, 0]), Err(RpcError::NoFunction));
    assert!(parse_call(&[5, 0, b'a']).is_err());
    assert!(parse_call(&[1, 0, b'a', 7]).is_err());
    // 256 non-empty items: one too many
    let mut body = Vec::new();
    for _ in 0..256 {
        body.extend_from_slice(&[1, 0, b'a']);
    }
    assert!(parse_call(&body).is_err());
    let mut long = vec![0u8, 1];
    long.extend(std::iter::repeat_n(b'n', 256));
    assert_eq!(parse_call(&long), Err(RpcError::NameTooLong { len: 256 }));
}

#[test]
fn modes_follow_modifier2() {
    assert_eq!(Mode::from_modifier2(0), Mode::Standard);
    assert_eq!(Mode::from_modifier2(2), Mode::Http);
    for m in [1, 3, 4, 5, 255] {
        assert_eq!(Mode::from_modifier2(m), Mode::Raw);
    }
}

#[test]
fn http_paths() {
    let c = parse_http_path(b"/hello/a//b/").unwrap().unwrap();
    assert_eq!(c.name, b"hello");
    assert_eq!(c.args, [&b"a"[..], b"b"]);
    assert_eq!(parse_http_path(b"/").unwrap(), None);
    assert_eq!(parse_http_path(b"").unwrap(), None);
    assert_eq!(parse_http_path(b"f").unwrap().unwrap().args.len(), 0);
}

#[test]
fn small_reply_head() {
    let mut out = Vec::new();
    encode_reply_head(5, &mut out);
    assert_eq!(out, [173, 5, 0, 0]);
    assert_eq!(parse_reply_head([173, 5, 0, 0]), Ok(ReplyHead::Result(5)));
    out.clear();
    encode_reply_head(0, &mut out);
    assert_eq!(
        parse_reply_head(out[..].try_into().unwrap()),
        Ok(ReplyHead::Result(0))
    );
    out.clear();
    encode_reply_head(65535, &mut out);
    assert_eq!(out, [173, 0xff, 0xff, 0]);
}

#[test]
fn large_reply_head_round_trips() {
    let mut out = Vec::new();
    encode_reply_head(70000, &mut out);
    let head = parse_reply_head(out[..4].try_into().unwrap()).unwrap();
    let ReplyHead::Large(n) = head else {
        panic!("expected a large reply, got {head:?}");
    };
    assert_eq!(n, out.len() - 4);
    assert_eq!(out[3], LARGE_REPLY);
    assert_eq!(large_reply_length(&out[4..]), Ok(70000));
}

#[test]
fn bad_replies() {
    assert_eq!(parse_reply_head(*b"HTTP"), Err(RpcError::NotAReply(b'H')));
    let mut dict = Vec::new();
    for item in [&b"CONTENT_LENGTH"[..], b"12x"] {
        dict.extend_from_slice(&(item.len() as u16).to_le_bytes());
        dict.extend_from_slice(item);
    }
    assert_eq!(large_reply_length(&dict), Err(RpcError::BadLength));
    assert_eq!(large_reply_length(b""), Err(RpcError::BadLength));
    assert!(large_reply_length(&[3, 0, b'a']).is_err());
}

#[test]
fn http_head_and_content_type() {
    let mut out = Vec::new();
    encode_http_head(
        http_protocol(None),
        "200 OK",
        http_content_type(Some(b"text/plain")),
        3,
        &mut out,
    );
    assert_eq!(
        out,
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n"
    );
    assert_eq!(http_content_type(Some(b"*/*")), b"application/binary");
    assert_eq!(http_content_type(None), b"application/binary");
    assert_eq!(http_content_type(Some(b"a\r\nX: y")), b"application/binary");
}

#[test]
fn http_protocol_follows_the_request() {
    assert_eq!(http_protocol(Some(b"HTTP/1.1")), b"HTTP/1.1");
    assert_eq!(http_protocol(Some(b"HTTP/2.0")), b"HTTP/2.0");
    assert_eq!(http_protocol(None), b"HTTP/1.0");
    assert_eq!(http_protocol(Some(b"HTTP/1.1\r\nX: y")), b"HTTP/1.0");
    assert_eq!(http_protocol(Some(b"FOO")), b"HTTP/1.0");
}
