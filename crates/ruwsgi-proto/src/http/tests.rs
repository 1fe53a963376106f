use super::*;

fn parse_with(buf: &[u8], limits: &Limits) -> (Result<Option<Head>, HttpError>, Vec<HeaderSpan>) {
    let mut headers = Vec::new();
    let r = parse_head(buf, limits, &mut headers);
    (r, headers)
}

fn parse(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    parse_with(buf, &Limits::default()).0
}

fn head(buf: &[u8]) -> Head {
    parse(buf).unwrap().unwrap()
}

/// 0 for an accepted head, `None` for "need more", else the refusal status.
fn verdict(buf: &[u8], limits: &Limits) -> Option<u16> {
    match parse_with(buf, limits).0 {
        Ok(Some(_)) => Some(0),
        Ok(None) => None,
        Err(e) => Some(e.status()),
    }
}

/// Feed every prefix: "need more" until some length, then the whole-buffer answer for every
/// longer prefix (headers included).
fn assert_incremental(buf: &[u8], limits: &Limits) {
    let full = parse_with(buf, limits);
    let mut settled = false;
    for end in 0..=buf.len() {
        let part = parse_with(&buf[..end], limits);
        if settled || !matches!(part.0, Ok(None)) {
            settled = true;
            assert_eq!(
                part.0,
                full.0,
                "prefix {end} of {:?}",
                String::from_utf8_lossy(buf)
            );
            if full.0.is_ok() {
                assert_eq!(part.1, full.1);
            }
        }
    }
}

const H: &str = "Host: a\r\n";

/// (request, expected status: 0 = accepted).
fn table() -> Vec<(String, u16)> {
    let req = |line: &str, fields: &str| format!("{line}\r\n{fields}\r\n");
    let post = |fields: &str| req("POST / HTTP/1.1", &format!("{H}{fields}"));
    let get = |line: &str| req(line, H);
    vec![
        // accepted shapes
        (get("GET / HTTP/1.1"), 0),
        (format!("\r\n\r\n{}", get("GET / HTTP/1.1")), 0),
        (req("GET / HTTP/1.0", ""), 0),
        (req("GET / HTTP/1.1", ""), 0),
        (get("OPTIONS * HTTP/1.1"), 0),
        (get("GET http://a.example/x?y=1 HTTP/1.1"), 0),
        (get("GET HTTPS://a.example HTTP/1.1"), 0),
        (get("GET /p?q=a|b&c={}#frag HTTP/1.1"), 0),
        (get("M-SEARCH / HTTP/1.1"), 0),
        (get("PROPFIND / HTTP/1.1"), 0),
        (get("VERSION-CONTROL / HTTP/1.1"), 0),
        (get("M_SEARCH / HTTP/1.1"), 0),
        (get("X.Y-Z_0 / HTTP/1.1"), 0),
        (get("-BL / HTTP/1.1"), 0),
        (get("123 / HTTP/1.1"), 0),
        (post("Content-Length: 0\r\n"), 0),
        (post("Content-Length:  42 \r\n"), 0),
        (post("Content-Length: 18446744073709551615\r\n"), 0),
        (post("Transfer-Encoding: chunked\r\n"), 0),
        (post("Transfer-Encoding: CHUNKED\r\n"), 0),
        (post("Transfer-Encoding: ,chunked,\r\n"), 0),
        (post("X: a\tb\r\n"), 0),
        (post("X: caf\u{e9}\r\n"), 0),
        (post("X:\r\n"), 0),
        (post("X: \t \r\n"), 0),
        // R1: CL and TE
        (
            post("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"),
            400,
        ),
        (
            post("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"),
            400,
        ),
        (
            post("Transfer-Encoding: gzip\r\nContent-Length: 3\r\n"),
            400,
        ),
        // R2: TE list
        (post("Transfer-Encoding: chunked, gzip\r\n"), 400),
        (post("Transfer-Encoding: chunked, chunked\r\n"), 400),
        (
            post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            400,
        ),
        (
            post("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),
            400,
        ),
        (post("Transfer-Encoding: chunked;q=1\r\n"), 400),
        (post("Transfer-Encoding: chun ked\r\n"), 400),
        (post("Transfer-Encoding:\r\n"), 400),
        (post("Transfer-Encoding: gzip, chunked\r\n"), 501),
        (
            post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
            501,
        ),
        (post("Transfer-Encoding: gzip\r\n"), 501),
        (post("Transfer-Encoding: identity\r\n"), 501),
        (post("Transfer-Encoding: foo\r\n"), 501),
        (
            req("POST / HTTP/1.0", "Transfer-Encoding: chunked\r\n"),
            400,
        ),
        // R3: Content-Length
        (post("Content-Length: +5\r\n"), 400),
        (post("Content-Length: -5\r\n"), 400),
        (post("Content-Length: 5 5\r\n"), 400),
        (post("Content-Length: 5,5\r\n"), 400),
        (post("Content-Length: 1e3\r\n"), 400),
        (post("Content-Length: 0x10\r\n"), 400),
        (post("Content-Length: 1_0\r\n"), 400),
        (post("Content-Length:\r\n"), 400),
        (post("Content-Length: 18446744073709551616\r\n"), 400),
        (post("Content-Length: 5\r\nContent-Length: 5\r\n"), 400),
        (post("Content-Length: 5\r\ncontent-length: 6\r\n"), 400),
        // R5: request line
        (get("GET  / HTTP/1.1"), 400),
        (get(" GET / HTTP/1.1"), 400),
        (get("GET / HTTP/1.1 "), 400),
        (get("GET /  HTTP/1.1"), 400),
        (get("GET\t/ HTTP/1.1"), 400),
        (get("GET /\tHTTP/1.1"), 400),
        (get("GET / HTTP/2.0"), 505),
        (get("GET / HTTP/1.2"), 505),
        (get("GET / HTTP/0.9"), 505),
        (get("GET / http/1.1"), 400),
        (get("GET / HTTP/1.10"), 400),
        (get("GET / HTTP/1"), 400),
        (get("GET / HTTP/1.x"), 400),
        (get("GET / FOO"), 400),
        (get("GET /"), 400),
        (get("GET"), 400),
        (get("GE:T / HTTP/1.1"), 400),
        // methods: upper-case letters, digits, `-`, `_`, `.` only
        (get("get / HTTP/1.1"), 400),
        (get("Get / HTTP/1.1"), 400),
        (get("GEt / HTTP/1.1"), 400),
        (get("-bl / HTTP/1.1"), 400),
        (get("m-search / HTTP/1.1"), 400),
        (get("G!T / HTTP/1.1"), 400),
        (get("G#T / HTTP/1.1"), 400),
        (get("G$T / HTTP/1.1"), 400),
        (get("G%T / HTTP/1.1"), 400),
        (get("G&T / HTTP/1.1"), 400),
        (get("G'T / HTTP/1.1"), 400),
        (get("G*T / HTTP/1.1"), 400),
        (get("G+T / HTTP/1.1"), 400),
        (get("G^T / HTTP/1.1"), 400),
        (get("G`T / HTTP/1.1"), 400),
        (get("G|T / HTTP/1.1"), 400),
        (get("G~T / HTTP/1.1"), 400),
        (get("G/T / HTTP/1.1"), 400),
        (get("G\"T / HTTP/1.1"), 400),
        (get("connect example.com:443 HTTP/1.1"), 400),
        (get("options * HTTP/1.1"), 400),
        (get("G\0T / HTTP/1.1"), 400),
        (get("G\u{c9}T / HTTP/1.1"), 400),
        (get("GET /a\u{7f} HTTP/1.1"), 400),
        (get("GET /caf\u{e9} HTTP/1.1"), 400),
        (get("GET /a\0 HTTP/1.1"), 400),
        (get("GET /a\rb HTTP/1.1"), 400),
        (get("GET /a b HTTP/1.1"), 400),
        (get("GET * HTTP/1.1"), 400),
        (get("GET example.com:80 HTTP/1.1"), 400),
        (get("GET a/b HTTP/1.1"), 400),
        (get("GET ftp://a/b HTTP/1.1"), 400),
        (get("GET http:///x HTTP/1.1"), 400),
        (get("GET http://user@a/x HTTP/1.1"), 400),
        (get("CONNECT example.com:443 HTTP/1.1"), 501),
        ("GET / HTTP/1.1\nHost: a\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: a\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: a\r\n\n".into(), 400),
        ("\nGET / HTTP/1.1\r\n\r\n".into(), 400),
        ("\r\r\nGET / HTTP/1.1\r\n\r\n".into(), 400),
        // R6: fields
        (post("Host : a\r\n"), 400),
        (post("X-A : a\r\n"), 400),
        (req("GET / HTTP/1.1", " Host: a\r\n"), 400),
        (post("X: a\r\n b\r\n"), 400),
        (post("X: a\r\n\tb\r\n"), 400),
        (post("X: a\0b\r\n"), 400),
        (post("X: a\rb\r\n"), 400),
        (post("X: a\u{7f}b\r\n"), 400),
        (post("X: a\u{1b}b\r\n"), 400),
        (post("N\u{e2}me: a\r\n"), 400),
        (post("X\0: a\r\n"), 400),
        (post(": a\r\n"), 400),
        (post("NoColon\r\n"), 400),
        (post("\"X\": a\r\n"), 400),
        // R7: underscore names are dropped, never interpreted
        (post("X_Forwarded_For: 1.2.3.4\r\n"), 0),
        (
            post("Content_Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            0,
        ),
        // R8: duplicates
        (req("GET / HTTP/1.1", "Host: a\r\nHost: a\r\n"), 400),
        (req("GET / HTTP/1.1", "Host: a\r\nhost: b\r\n"), 400),
        (post("Content-Type: a\r\nContent-Type: a\r\n"), 400),
    ]
}

#[test]
fn rules_table() {
    let limits = Limits::default();
    for (req, want) in table() {
        assert_eq!(
            verdict(req.as_bytes(), &limits),
            Some(want),
            "{req:?}: {:?}",
            parse(req.as_bytes())
        );
    }
}

#[test]
fn rules_table_is_incremental() {
    let limits = Limits::default();
    for (req, _) in table() {
        assert_incremental(req.as_bytes(), &limits);
    }
}

#[test]
fn invalid_method_is_refused_at_its_first_bad_byte() {
    for (partial, want) in [
        (&b"g"[..], Some(400)),
        (b"GETx", Some(400)),
        (b"-b", Some(400)),
        (b"-B", None),
        (b"GET", None),
        (b"M-SEARCH", None),
    ] {
        assert_eq!(verdict(partial, &Limits::default()), want, "{partial:?}");
    }
    let e = parse(b"get / HTTP/1.1\r\n\r\n").unwrap_err();
    assert_eq!((e.status(), e.reason()), (400, "invalid method"));
    let e = parse(b"G~T / HTTP/1.1\r\n\r\n").unwrap_err();
    assert_eq!((e.status(), e.reason()), (400, "invalid method"));
}

#[test]
fn byte_by_byte_equals_whole() {
    let req = b"POST /up?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\n\
                Content-Length: 5\r\nX_Skip: 1\r\n\r\nhello";
    let mut headers = Vec::new();
    let whole = parse_head(req, &Limits::default(), &mut headers)
        .unwrap()
        .unwrap();
    let whole_headers = headers.clone();
    let end = whole.consumed;
    for n in 0..end {
        assert_eq!(
            parse_head(&req[..n], &Limits::default(), &mut headers),
            Ok(None)
        );
    }
    for n in end..=req.len() {
        assert_eq!(
            parse_head(&req[..n], &Limits::default(), &mut headers),
            Ok(Some(whole))
        );
        assert_eq!(headers, whole_headers);
    }
}

#[test]
fn head_fields_and_spans() {
    let req = b"PUT /a%20b?q=1 HTTP/1.1\r\nHost:  ex.com \r\nContent-Type:\ttext/x\t\r\n\
                X_Y: z\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello";
    let (r, headers) = parse_with(req, &Limits::default());
    let h = r.unwrap().unwrap();
    assert_eq!(&req[h.consumed..], b"hello");
    assert_eq!(slice(req, h.method), b"PUT");
    assert_eq!(slice(req, h.target), b"/a%20b?q=1");
    assert_eq!(h.version, Version::Http11);
    assert_eq!(h.framing, BodyFraming::Length(5));
    assert_eq!(slice(req, h.host.unwrap()), b"ex.com");
    assert_eq!(slice(req, h.content_type.unwrap()), b"text/x");
    assert!(h.keep_alive);
    assert!(h.expect_continue);
    assert_eq!(h.dropped_underscore, 1);
    let pairs: Vec<_> = headers
        .iter()
        .map(|f| (f.name_in(req), f.value_in(req)))
        .collect();
    assert_eq!(
        pairs,
        vec![
            (&b"Host"[..], &b"ex.com"[..]),
            (b"Content-Type", b"text/x"),
            (b"Content-Length", b"5"),
            (b"Expect", b"100-continue"),
        ]
    );
}

#[test]
fn framing_decisions() {
    let f = |fields: &str| head(format!("POST / HTTP/1.1\r\n{fields}\r\n").as_bytes()).framing;
    assert_eq!(f(""), BodyFraming::None);
    assert_eq!(f("Content-Length: 007\r\n"), BodyFraming::Length(7));
    assert_eq!(f("Transfer-Encoding: chunked\r\n"), BodyFraming::Chunked);
    // An underscore twin of a framing field changes nothing.
    assert_eq!(f("Content_Length: 7\r\n"), BodyFraming::None);
    assert_eq!(f("Transfer_Encoding: chunked\r\n"), BodyFraming::None);
}

#[test]
fn keep_alive_rules() {
    let ka =
        |line: &str, fields: &str| head(format!("{line}\r\n{fields}\r\n").as_bytes()).keep_alive;
    assert!(ka("GET / HTTP/1.1", ""));
    assert!(!ka("GET / HTTP/1.1", "Connection: close\r\n"));
    assert!(!ka("GET / HTTP/1.1", "Connection: Upgrade, CLOSE\r\n"));
    assert!(!ka("GET / HTTP/1.0", ""));
    assert!(ka("GET / HTTP/1.0", "Connection: Keep-Alive\r\n"));
    assert!(!ka("GET / HTTP/1.0", "Connection: keep-alive, close\r\n"));
}

#[test]
fn expect_continue_only_on_http11() {
    let e = |line: &str| {
        head(format!("{line}\r\nExpect: 100-Continue\r\n\r\n").as_bytes()).expect_continue
    };
    assert!(e("POST / HTTP/1.1"));
    assert!(!e("POST / HTTP/1.0"));
}

#[test]
fn strict_host_mode() {
    let strict = Limits {
        strict_host: true,
        ..Limits::default()
    };
    assert_eq!(verdict(b"GET / HTTP/1.1\r\n\r\n", &strict), Some(400));
    assert_eq!(
        verdict(b"GET / HTTP/1.1\r\n\r\n", &Limits::default()),
        Some(0)
    );
    assert_eq!(verdict(b"GET / HTTP/1.0\r\n\r\n", &strict), Some(0));
    assert_eq!(
        verdict(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &strict),
        Some(0)
    );
}

#[test]
fn request_line_limit_gives_414_before_the_line_ends() {
    let limits = Limits {
        max_request_line: 64,
        max_head: 4096,
        ..Limits::default()
    };
    let mut line = b"GET /".to_vec();
    line.resize(64 - 9, b'a');
    line.extend_from_slice(b" HTTP/1.1");
    assert_eq!(line.len(), 64);
    let mut ok = line.clone();
    ok.extend_from_slice(b"\r\n\r\n");
    assert_eq!(verdict(&ok, &limits), Some(0));
    // One byte more and no CRLF yet: refused at once.
    let mut long = b"GET /".to_vec();
    long.resize(65, b'a');
    assert_eq!(verdict(&long, &limits), Some(414));
    assert_eq!(verdict(&long[..64], &limits), None);
    let mut long_full = line.clone();
    long_full.insert(5, b'a');
    long_full.extend_from_slice(b"\r\n\r\n");
    assert_eq!(verdict(&long_full, &limits), Some(414));
    assert_incremental(&long_full, &limits);
    // The default limit: a 9 KiB request line is 414, not 431.
    let mut nine_k = b"GET /".to_vec();
    nine_k.resize(9 * 1024, b'a');
    nine_k.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    assert_eq!(verdict(&nine_k, &Limits::default()), Some(414));
}

#[test]
fn head_limit_gives_431_before_the_blank_line() {
    let limits = Limits {
        max_head: 100,
        ..Limits::default()
    };
    let mut req = b"GET / HTTP/1.1\r\nX: ".to_vec();
    req.resize(100, b'v');
    assert_eq!(verdict(&req, &limits), None);
    req.push(b'v');
    assert_eq!(verdict(&req, &limits), Some(431));
    // A head of exactly max_head bytes passes.
    let mut exact = b"GET / HTTP/1.1\r\nX: ".to_vec();
    exact.resize(96, b'v');
    exact.extend_from_slice(b"\r\n\r\n");
    assert_eq!(verdict(&exact, &limits), Some(0));
    exact.insert(20, b'v');
    assert_eq!(verdict(&exact, &limits), Some(431));
    assert_incremental(&exact, &limits);
    // 5 KiB of fields with the default buffer size, then with 65535.
    let mut five_k = b"GET / HTTP/1.1\r\nX: ".to_vec();
    five_k.resize(5 * 1024, b'v');
    five_k.extend_from_slice(b"\r\n\r\n");
    assert_eq!(verdict(&five_k, &Limits::default()), Some(431));
    let big = Limits {
        max_head: 65535,
        ..Limits::default()
    };
    assert_eq!(verdict(&five_k, &big), Some(0));
}

#[test]
fn header_count_limit_gives_431() {
    let limits = Limits {
        max_head: 65535,
        ..Limits::default()
    };
    let mut req = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    let mut ok = req.clone();
    ok.extend_from_slice(b"\r\n");
    assert_eq!(verdict(&ok, &limits), Some(0));
    req.extend_from_slice(b"X_Dropped: v\r\n\r\n");
    assert_eq!(verdict(&req, &limits), Some(431));
}

#[test]
fn never_need_more_past_max_buffer() {
    let limits = Limits {
        max_request_line: 40,
        max_head: 60,
        ..Limits::default()
    };
    let inputs: [&[u8]; 4] = [
        &[b'a'; 200],
        &[b'\r', b'\n'].repeat(100),
        b"GET / HTTP/1.1\r\nX: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv",
        b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r",
    ];
    for input in inputs {
        for n in 0..=input.len() {
            if n > limits.max_buffer() {
                assert!(verdict(&input[..n], &limits).is_some(), "{n}");
            }
        }
        assert_incremental(input, &limits);
    }
}

#[test]
fn leading_empty_lines_are_skipped() {
    let req = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    let h = head(req);
    assert_eq!(slice(req, h.method), b"GET");
    assert_eq!(h.consumed, req.len());
    assert_eq!(parse(b"\r\n"), Ok(None));
    assert_eq!(parse(b"\r"), Ok(None));
}

#[test]
fn pipelined_requests_are_not_over_read() {
    let two = b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
    let first = head(two);
    assert_eq!(first.consumed, 19);
    let second = head(&two[first.consumed..]);
    assert_eq!(slice(&two[first.consumed..], second.target), b"/2");
}

#[test]
fn errors_have_reasons() {
    let e = parse(b"GET / HTTP/2.0\r\n\r\n").unwrap_err();
    assert_eq!(e.status(), 505);
    assert_eq!(e.reason(), "HTTP version not supported");
    assert_eq!(e.to_string(), "HTTP version not supported (505)");
    assert_eq!(HttpError::body_too_large().status(), 413);
}

#[test]
fn split_target_table() {
    let cases: &[(&[u8], &[u8], &[u8])] = &[
        (b"/", b"/", b""),
        (b"/a/b?x=1&y=2", b"/a/b", b"x=1&y=2"),
        (b"/a?x#frag", b"/a", b"x"),
        (b"/a#frag?x", b"/a", b""),
        (b"/a?", b"/a", b""),
        (b"/a??b", b"/a", b"?b"),
        (b"http://h.example:8080/p/q?z", b"/p/q", b"z"),
        (b"HTTPS://h.example", b"/", b""),
        (b"http://h.example?z", b"/", b"z"),
        (b"*", b"*", b""),
    ];
    for (target, path, query) in cases {
        assert_eq!(split_target(target), (*path, *query), "{target:?}");
    }
    assert_eq!(target_authority(b"http://h:1/x"), Some(&b"h:1"[..]));
    assert_eq!(target_authority(b"/x"), None);
}

#[test]
fn percent_decode_table() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"/plain", b"/plain"),
        (b"/a%20b", b"/a b"),
        (b"/%2e%2E/%2f", b"/..//"),
        (b"/%00", b"/\0"),
        (b"/%e9t%C3%A9", b"/\xe9t\xc3\xa9"),
        (b"/100%", b"/100%"),
        (b"/%4", b"/%4"),
        (b"/%zz%41", b"/%zzA"),
        (b"/%%41", b"/%A"),
        (b"/a+b", b"/a+b"),
    ];
    let mut out = b"stale".to_vec();
    for (input, want) in cases {
        percent_decode(input, &mut out);
        assert_eq!(out, *want, "{input:?}");
    }
}

/// Decode `parts` in sequence; returns the body or the first error.
fn decode_parts(parts: &[&[u8]], max_trailer: usize) -> Result<(Vec<u8>, bool, usize), ChunkError> {
    let mut d = ChunkedDecoder::new(max_trailer);
    let mut body = Vec::new();
    let mut used = 0;
    for part in parts {
        let mut input = *part;
        loop {
            let (n, step) = d.decode(input)?;
            used += n;
            match step {
                ChunkStep::Data(s) => body.extend_from_slice(slice(input, s)),
                ChunkStep::NeedMore => {
                    assert_eq!(n, input.len());
                    break;
                }
                ChunkStep::Done => return Ok((body, true, used)),
            }
            input = &input[n..];
        }
    }
    Ok((body, d.is_done(), used))
}

const SAMPLE: &[u8] = b"5\r\nhello\r\n1;name=val;q=\"a\\\"b; c\"\r\n \r\nA;x\r\n0123456789\r\n\
                        2 ;\tk = \"v \\\" w\" ; z\r\n!!\r\n0; last\r\nX-Trailer: yes\r\n\r\nNEXT";

#[test]
fn chunked_sample_whole() {
    let (body, done, used) = decode_parts(&[SAMPLE], 1024).unwrap();
    assert_eq!(body, b"hello 0123456789!!");
    assert!(done);
    assert_eq!(&SAMPLE[used..], b"NEXT");
}

#[test]
fn chunked_split_at_every_offset() {
    let want = decode_parts(&[SAMPLE], 1024).unwrap();
    for cut in 0..=SAMPLE.len() {
        let got = decode_parts(&[&SAMPLE[..cut], &SAMPLE[cut..]], 1024).unwrap();
        assert_eq!(got, want, "cut {cut}");
    }
    let bytes: Vec<&[u8]> = SAMPLE.chunks(1).collect();
    assert_eq!(decode_parts(&bytes, 1024).unwrap(), want);
}

#[test]
fn chunked_errors() {
    use ChunkError::*;
    let cases: &[(&[u8], ChunkError)] = &[
        (b"\r\n", BadSize),
        (b"-5\r\n", BadSize),
        (b"+5\r\n", BadSize),
        (b" 5\r\n", BadSize),
        (b"5 \r\n", BadSize),
        (b"0x5\r\n", BadSize),
        (b"5\n", BadSize),
        (b"g\r\n", BadSize),
        (b"10000000000000000\r\n", SizeTooLong),
        (b"00000000000000001\r\n", SizeTooLong),
        (b"5\t\r\n", BadSize),
        (b"5 x\r\n", BadSize),
        (b" 5;a\r\n", BadSize),
        (b"5;\r\n", BadExtension),
        (b"5;a=\r\n", BadExtension),
        (b"5;a=\"x\ny\"\r\n", BadExtension),
        (b"5;a=\"x\"y\r\n", BadExtension),
        (b"5;a\nb\r\n", BadExtension),
        (b"5\rX", BadLineEnd),
        (b"5\r\nhelloX", BadLineEnd),
        (b"5\r\nhello\rX", BadLineEnd),
        (b"0\r\n\rX", BadLineEnd),
        (b"0\r\nContent-Length: 5\r\n\r\n", ForbiddenTrailer),
        (b"0\r\ntransfer-encoding: chunked\r\n\r\n", ForbiddenTrailer),
        (b"0\r\nHOST: a\r\n\r\n", ForbiddenTrailer),
        (b"0\r\nX: a\r\n b\r\n\r\n", BadTrailer),
        (b"0\r\nX : a\r\n\r\n", BadTrailer),
        (b"0\r\nX: a\0\r\n\r\n", BadTrailer),
        (b"0\r\nX: a\n\r\n", BadTrailer),
        (b"0\r\nX: a\rb\r\n\r\n", BadTrailer),
        (
            b"0\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
            TrailerTooLarge,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            decode_parts(&[input], 32).map(|_| ()),
            Err(*want),
            "{input:?}"
        );
        assert_eq!(want.status(), 400);
    }
    // Forbidden names longer than the name buffer are still matched exactly.
    assert!(
        decode_parts(&[b"0\r\nContent-Length-X: 1\r\n\r\n"], 64)
            .unwrap()
            .1
    );
}

/// Chunk-size lines with legal extensions (RFC 9112 §7.1.1): all accepted and ignored.
const GOOD_EXTENSIONS: &[&[u8]] = &[
    b"5;a",
    b"5;a=b",
    b"5;a=b;c=\"d\";e",
    b"5; some; parameters=stuff",
    b"5 ;a=b",
    b"5\t;a=b",
    b"5  \t ;a",
    b"5;a = \"quoted \\\" value\"",
    b"5;a= b",
    b"5;a =b",
    b"5 ; a = b ; c ;\td\t=\t\"e\"",
    b"5;a=\"\"",
    b"5;a=\"\\\\\"",
    b"5;a=\"tab\there\"",
    b"5;a=\"caf\xe9\"",
    b"5;a=\"\\\xe9\\\t\"",
    b"5;a=\"x;y=z\"",
    b"5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~",
    b"5;A-1=2.0",
];

#[test]
fn chunk_extensions_are_accepted_and_ignored() {
    for line in GOOD_EXTENSIONS {
        let body = [line, &b"\r\nhello\r\n0\r\n\r\nNEXT"[..]].concat();
        let (got, done, used) =
            decode_parts(&[&body], 64).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert_eq!((&got[..], done), (&b"hello"[..], true), "{line:?}");
        assert_eq!(&body[used..], b"NEXT", "{line:?}");
        // Split anywhere, the answer is the same.
        for cut in 0..=body.len() {
            let parts = [&body[..cut], &body[cut..]];
            assert_eq!(decode_parts(&parts, 64), Ok((got.clone(), true, used)));
        }
    }
    // On the last chunk too.
    let last = b"0 ; final = \"yes\"\r\n\r\n";
    assert_eq!(
        decode_parts(&[last], 64),
        Ok((Vec::new(), true, last.len()))
    );
}

#[test]
fn malformed_chunk_extensions_are_refused() {
    use ChunkError::*;
    let cases: &[(&[u8], ChunkError)] = &[
        // empty or non-token names
        (b"5;\r\n", BadExtension),
        (b"5; \r\n", BadExtension),
        (b"5;;a\r\n", BadExtension),
        (b"5;=b\r\n", BadExtension),
        (b"5;\"a\"=b\r\n", BadExtension),
        (b"5;a:b\r\n", BadExtension),
        (b"5;a b\r\n", BadExtension),
        (b"5;a/b\r\n", BadExtension),
        // `=` without a value, or a bad value
        (b"5;a=\r\n", BadExtension),
        (b"5;a= \r\n", BadExtension),
        (b"5;a=;b\r\n", BadExtension),
        (b"5;a==b\r\n", BadExtension),
        (b"5;a=b=c\r\n", BadExtension),
        (b"5;a=b c\r\n", BadExtension),
        (b"5;a=b\"c\"\r\n", BadExtension),
        (b"5;a=\"x\"y\r\n", BadExtension),
        (b"5;a=\"x\"\"\r\n", BadExtension),
        (b"5;a=(b)\r\n", BadExtension),
        // whitespace where the grammar has none: at the end of the line
        (b"5;a \r\n", BadExtension),
        (b"5;a\t\r\n", BadExtension),
        (b"5;a=b \r\n", BadExtension),
        (b"5;a=\"x\" \r\n", BadExtension),
        (b"5;a =\r\n", BadExtension),
        // unterminated quoted strings, bare CR / LF, control bytes
        (b"5;a=\"unterminated\r\n", BadExtension),
        (b"5;a=\"x\\\r\n", BadExtension),
        (b"5;a=\"x\ry\"\r\n", BadExtension),
        (b"5;a=\"x\ny\"\r\n", BadExtension),
        (b"5;a=\"x\0\"\r\n", BadExtension),
        (b"5;a=\"\x7f\"\r\n", BadExtension),
        (b"5;a=\"\\\x01\"\r\n", BadExtension),
        (b"5;a=b\0\r\n", BadExtension),
        (b"5;a\nb\r\n", BadExtension),
        (b"5;a=b\n", BadExtension),
        (b"5;a\x1b\r\n", BadExtension),
        (b"5;\xe9\r\n", BadExtension),
        // a bare CR that ends the extension is a broken line end
        (b"5;a\rb\r\n", BadLineEnd),
        (b"5;a=\"x\"\rb\r\n", BadLineEnd),
        // whitespace around the size without an extension stays refused
        (b"5 \r\n", BadSize),
        (b"5 \t \r\n", BadSize),
        (b" 5\r\n", BadSize),
        (b"\t;a\r\n", BadSize),
        (b";a\r\n", BadSize),
        (b"5 a\r\n", BadSize),
        (b"5 5\r\n", BadSize),
    ];
    for (line, want) in cases {
        let body = [line, &b"hello\r\n0\r\n\r\n"[..]].concat();
        assert_eq!(
            decode_parts(&[&body], 64).map(|_| ()),
            Err(*want),
            "{line:?}"
        );
        // Byte by byte, the same error, and no data before it.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(decode_parts(&bytes, 64).map(|_| ()), Err(*want), "{line:?}");
    }
}

#[test]
fn extension_bound_counts_whitespace() {
    // Everything after the last size digit up to the CR counts, whitespace included.
    let mut ok = b"1".to_vec();
    ok.resize(1 + MAX_EXTENSION_BYTES - 2, b' ');
    ok.extend_from_slice(b";a\r\nz\r\n0\r\n\r\n");
    assert_eq!(decode_parts(&[&ok], 8).unwrap().0, b"z");
    let mut long = b"1".to_vec();
    long.resize(1 + MAX_EXTENSION_BYTES - 1, b' ');
    long.extend_from_slice(b";a\r\nz\r\n0\r\n\r\n");
    assert_eq!(decode_parts(&[&long], 8), Err(ChunkError::ExtensionTooLong));
    // Refused as soon as the bound is passed, without waiting for the line end.
    let mut d = ChunkedDecoder::new(8);
    let endless = [b' '; MAX_EXTENSION_BYTES + 1];
    assert_eq!(d.decode(b"1"), Ok((1, ChunkStep::NeedMore)));
    assert_eq!(d.decode(&endless), Err(ChunkError::ExtensionTooLong));
    // The bound is per line: each of many long-extension lines may use all of it.
    let mut ext = b";a=".to_vec();
    ext.resize(MAX_EXTENSION_BYTES, b'x');
    let mut many = Vec::new();
    for _ in 0..3 {
        many.extend_from_slice(b"1");
        many.extend_from_slice(&ext);
        many.extend_from_slice(b"\r\nz\r\n");
    }
    many.extend_from_slice(b"0");
    many.extend_from_slice(&ext);
    many.extend_from_slice(b"\r\n\r\n");
    assert_eq!(decode_parts(&[&many], 8).unwrap().0, b"zzz");
}

#[test]
fn chunked_decoder_stays_failed_and_done() {
    let mut d = ChunkedDecoder::new(64);
    assert_eq!(d.decode(b"3\r"), Ok((2, ChunkStep::NeedMore)));
    assert_eq!(d.decode(b"\nab"), Ok((3, ChunkStep::Data((1, 3)))));
    assert_eq!(d.decode(b"cX"), Ok((1, ChunkStep::Data((0, 1)))));
    assert_eq!(d.decode(b"X"), Err(ChunkError::BadLineEnd));
    assert_eq!(d.decode(b"\r\n0\r\n\r\n"), Err(ChunkError::BadLineEnd));

    let mut d = ChunkedDecoder::new(64);
    assert_eq!(d.decode(b"0\r\n\r\n"), Ok((5, ChunkStep::Done)));
    assert_eq!(d.decode(b"more"), Ok((0, ChunkStep::Done)));
    assert_eq!(d.body_len(), 0);
    assert_eq!(d.decode(b""), Ok((0, ChunkStep::Done)));
    assert_eq!(
        ChunkedDecoder::new(1).decode(b""),
        Ok((0, ChunkStep::NeedMore))
    );
}

#[test]
fn chunked_max_size_chunk_header() {
    let mut d = ChunkedDecoder::new(64);
    let line = b"FFFFFFFFFFFFFFFF\r\nab";
    assert_eq!(d.decode(line), Ok((20, ChunkStep::Data((18, 20)))));
    assert_eq!(d.decode(b""), Ok((0, ChunkStep::NeedMore)));
    assert_eq!(d.body_len(), 2);
    assert_eq!(d.chunk_remaining(), u64::MAX - 2);
}

#[test]
fn chunk_remaining_is_known_at_the_size_line() {
    let mut d = ChunkedDecoder::new(64);
    assert_eq!(d.chunk_remaining(), 0);
    assert_eq!(d.decode(b"1"), Ok((1, ChunkStep::NeedMore)));
    // Digits still being read: nothing announced yet.
    assert_eq!(d.chunk_remaining(), 0);
    assert_eq!(d.decode(b"0\r\n"), Ok((3, ChunkStep::NeedMore)));
    assert_eq!((d.body_len(), d.chunk_remaining()), (0, 16));
    assert_eq!(d.decode(b"0123456789"), Ok((10, ChunkStep::Data((0, 10)))));
    assert_eq!((d.body_len(), d.chunk_remaining()), (10, 6));
    assert_eq!(d.decode(b"abcdef\r\n"), Ok((6, ChunkStep::Data((0, 6)))));
    assert_eq!((d.body_len(), d.chunk_remaining()), (16, 0));
    assert_eq!(d.decode(b"\r\n0\r\n\r\n"), Ok((7, ChunkStep::Done)));
    assert_eq!(d.chunk_remaining(), 0);
}

#[test]
fn extension_length_is_bounded() {
    let mut line = b"1;a=".to_vec();
    line.resize(4 + MAX_EXTENSION_BYTES, b'x');
    line.extend_from_slice(b"\r\nz\r\n0\r\n\r\n");
    assert_eq!(decode_parts(&[&line], 8), Err(ChunkError::ExtensionTooLong));
    let mut ok = b"1;a=".to_vec();
    ok.resize(1 + MAX_EXTENSION_BYTES, b'x');
    ok.extend_from_slice(b"\r\nz\r\n0\r\n\r\n");
    assert_eq!(decode_parts(&[&ok], 8).unwrap().0, b"z");
}

#[test]
fn status_lines() {
    let ok: &[(&[u8], u16)] = &[
        (b"200 OK", 200),
        (b"200 ", 200),
        (b"200", 200),
        (b"404 Not\tFound", 404),
        (b"999 Custom", 999),
        (b"100 Continue", 100),
        (b"200 caf\xe9", 200),
    ];
    for (s, code) in ok {
        assert_eq!(parse_status(s), Ok(*code), "{s:?}");
    }
    let bad: &[(&[u8], ResponseSyntaxError)] = &[
        (b"", ResponseSyntaxError::BadCode),
        (b"20", ResponseSyntaxError::BadCode),
        (b"099 Low", ResponseSyntaxError::BadCode),
        (b"2000 OK", ResponseSyntaxError::BadCode),
        (b"20x OK", ResponseSyntaxError::BadCode),
        (b"200OK", ResponseSyntaxError::BadCode),
        (b"200\tOK", ResponseSyntaxError::BadCode),
        (b" 200 OK", ResponseSyntaxError::BadCode),
        (b"200 OK\r\nX-Injected: 1", ResponseSyntaxError::BadReason),
        (b"200 OK\n", ResponseSyntaxError::BadReason),
        (b"200 O\0K", ResponseSyntaxError::BadReason),
    ];
    for (s, e) in bad {
        assert_eq!(parse_status(s), Err(*e), "{s:?}");
    }
}

#[test]
fn response_header_checks() {
    assert!(valid_header_name(b"X-Custom_1"));
    assert!(!valid_header_name(b""));
    assert!(!valid_header_name(b"X Custom"));
    assert!(!valid_header_name(b"X:Custom"));
    assert!(!valid_header_name(b"X\r\nY"));
    assert!(!valid_header_name(b"caf\xe9"));
    assert!(valid_header_value(b""));
    assert!(valid_header_value(b"text/html; charset=utf-8"));
    assert!(valid_header_value(b"a\tb \xe9"));
    assert!(!valid_header_value(b"a\r\nSet-Cookie: x=1"));
    assert!(!valid_header_value(b"a\nb"));
    assert!(!valid_header_value(b"a\rb"));
    assert!(!valid_header_value(b"a\0b"));
    assert!(!valid_header_value(b"a\x7fb"));
}
