//! The fuzz oracles on stable: hand-written seeds, then pseudo-random mutations of them.

use super::*;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const DICT: &[&[u8]] = &[
    b"Transfer-Encoding: ",
    b"chunked",
    b"Content-Length: ",
    b"Host: ",
    b"\r\n",
    b"\r\n\r\n",
    b"\n",
    b"\r",
    b";",
    b"=",
    b"\\",
    b"0x",
    b"\"",
    b"_",
    b":",
    b" ",
    b"\t",
    b"\0",
    b"UWSGI_",
    b"HTTP/1.1",
    b"GET",
    b"get",
    b"-",
    b"0\r\n\r\n",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out.remove(i);
            }
            2 => {
                let word = DICT[rng.below(DICT.len())];
                out.splice(at..at, word.iter().copied());
            }
            3 => out.truncate(at),
            4 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            _ => {
                let i = rng.below(out.len() + 1);
                let b = rng.next() as u8;
                out.insert(i.min(out.len()), b);
            }
        }
    }
    out
}

/// Run `check` on the seeds and on `rounds` mutations; every outcome must be reached often
/// enough for the run to mean something.
/// `RUWSGI_FUZZ_ROUNDS` multiplies the rounds and `RUWSGI_FUZZ_SEED` changes the generator
/// seed, for longer runs: `RUWSGI_FUZZ_ROUNDS=100 cargo test --release`.
fn run(seeds: &[Vec<u8>], rounds: usize, check: fn(&[u8]) -> Outcome) {
    let reached = [Outcome::Accepted, Outcome::Rejected, Outcome::Incomplete];
    run_reaching(seeds, rounds, check, &reached);
}

/// [`run`], requiring each of `reached` in at least 2% of the rounds.
fn run_reaching(
    seeds: &[Vec<u8>],
    rounds: usize,
    check: fn(&[u8]) -> Outcome,
    reached: &[Outcome],
) {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let rounds = rounds * env("RUWSGI_FUZZ_ROUNDS").unwrap_or(1) as usize;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ env("RUWSGI_FUZZ_SEED").unwrap_or(0));
    let mut seen = std::collections::HashMap::new();
    for seed in seeds {
        check(seed);
    }
    let mut last = seeds[0].clone();
    for _ in 0..rounds {
        // Half the time stack more mutations on the previous input, to go deeper.
        let base = match rng.below(2) {
            0 => &last,
            _ => &seeds[rng.below(seeds.len())],
        };
        let input = mutate(&mut rng, base);
        *seen.entry(check(&input)).or_insert(0usize) += 1;
        last = input;
    }
    eprintln!("outcomes: {seen:?}");
    for &outcome in reached {
        assert!(
            seen.get(&outcome).copied().unwrap_or(0) >= rounds / 50,
            "{seen:?}"
        );
    }
}

fn uwsgi_seeds() -> Vec<Vec<u8>> {
    let mut vars = Vars::new();
    vars.push(b"REQUEST_METHOD", b"GET");
    vars.push(b"PATH_INFO", b"/");
    vars.push(b"EMPTY", b"");
    let mut normal = Vec::new();
    uwsgi::encode_packet(0, 0, &vars, &mut normal).unwrap();
    let mut with_body = normal.clone();
    with_body.extend_from_slice(b"body");
    let mut rpc = vec![173, 14, 0, 0];
    uwsgi::encode_array(&[b"hello", b"world"], &mut rpc).unwrap();
    vec![
        normal.clone(),
        [&[1u8][..], &normal[1..]].concat(),
        with_body,
        rpc,
        vec![0, 0, 0, 0],
        vec![30, 0, 0, 0, b'x'],
        vec![0, 4, 0, 0, 0, 0, 1, 0],
        vec![0, 5, 0, 0, 1, 0, b'A', 9, 0],
        vec![0, 0xff, 0xff, 0],
    ]
}

fn http_seeds() -> Vec<Vec<u8>> {
    [
        &b"\x00GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"[..],
        b"\x00POST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        b"\x00POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX_Y: 1\r\n\r\n",
        b"\x01GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"\x03GET http://a/b HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
        b"\x00\r\nOPTIONS * HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        b"\x00GET / HTTP/1.1\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n",
        b"\x00M-SEARCH /x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\x00get / HTTP/1.1\r\n\r\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .chain([
        b"\x01GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n"
            .to_vec(),
    ])
    .collect()
}

fn chunked_seeds() -> Vec<Vec<u8>> {
    [
        &b"5\r\nhello\r\n0\r\n\r\n"[..],
        b"3;a=b;c=\"d\\\"e\"\r\nabc\r\n0\r\nX-T: 1\r\n\r\nNEXT",
        b"A\r\n0123456789\r\n1\r\nz\r\n0\r\n\r\n",
        b"0\r\nHost: x\r\n\r\n",
        b"FFFFFFFFFFFFFFFF\r\nab",
        b"5 ; some; parameters=stuff\r\nhello\r\n1;a = \"q \\\" v\"\t;b\r\nz\r\n0 ;c\r\n\r\n",
    ]
    .iter()
    .flat_map(|body| {
        [
            [&[10u8, 200, 16][..], body].concat(),
            [&[0u8, 0, 2][..], body].concat(),
        ]
    })
    .collect()
}

fn cache_seeds() -> Vec<Vec<u8>> {
    use ruwsgi_proto::cache::{encode_magic_request, Command, MagicCall};
    let mut seeds = Vec::new();
    for (cmd, key, value) in [
        (Command::Get, &b"foo"[..], &b""[..]),
        (Command::Set, b"k", b"value"),
        (Command::Update, b"key", b"0123456789"),
        (Command::Clear, b"", b""),
        (Command::Exists, b"e", b""),
    ] {
        let mut out = vec![8u8];
        let call = MagicCall {
            cmd,
            key,
            value,
            expires: 30,
            cache: b"shared",
            keep: cmd == Command::Get,
        };
        encode_magic_request(&call, &mut out).unwrap();
        seeds.push(out);
    }
    let mut set = vec![1u8, 111, 11, 0, 1];
    uwsgi::encode_array(&[b"key", b"value"], &mut set).unwrap();
    seeds.push(set);
    seeds.push(vec![0, 111, 0, 0, 17]);
    seeds
}

#[test]
fn cache_packet_oracle() {
    run(&cache_seeds(), 20_000, check_cache_packet);
}

#[test]
fn uwsgi_packet_oracle() {
    run(&uwsgi_seeds(), 20_000, check_uwsgi_packet);
}

#[test]
fn http_head_oracle() {
    run(&http_seeds(), 20_000, check_http_head);
}

fn vars_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![vec![0u8], vec![2u8, 1, 0]];
    let mut vars = Vars::new();
    vars.push(b"REQUEST_METHOD", b"GET");
    vars.push(b"PATH_INFO", b"/x");
    vars.push(b"EMPTY", b"");
    for limit in [0u8, 2, 3] {
        let mut block = vec![limit];
        uwsgi::encode_vars(&vars, &mut block).unwrap();
        seeds.push(block);
    }
    seeds
}

fn config_seeds() -> Vec<Vec<u8>> {
    [
        (
            0u8,
            "[uwsgi]\nhttp-socket = :8000\nmodule = app:application\n; c\n[other]\nx = 1\n",
        ),
        (0, "[uwsgi]\n  processes=4  \n=novalue\nkey\n"),
        (
            1,
            "uwsgi:\n  http-socket: :8000\n  processes: 4\n  env:\n    - A=1\n    - B=2\n",
        ),
        (
            2,
            "{\"uwsgi\": {\"http-socket\": \":8000\", \"processes\": 4, \"env\": [\"A=1\"]}}",
        ),
        (
            3,
            "[uwsgi]\nhttp-socket = \":8000\"\nprocesses = 4\nenv = [\"A=1\", \"B=2\"]\n",
        ),
    ]
    .iter()
    .map(|(f, t)| [&[*f][..], t.as_bytes()].concat())
    .collect()
}

#[test]
fn uwsgi_vars_oracle() {
    let reached = [Outcome::Accepted, Outcome::Rejected];
    run_reaching(&vars_seeds(), 20_000, check_uwsgi_vars, &reached);
}

#[test]
fn config_oracle() {
    let reached = [Outcome::Accepted, Outcome::Rejected];
    run_reaching(&config_seeds(), 20_000, check_config, &reached);
}

#[test]
fn chunked_decoder_oracle() {
    run(&chunked_seeds(), 50_000, check_chunked);
}

/// The checked-in corpus (`seeds/<target>/`) is a regression suite.
#[test]
fn seed_corpus() {
    type Check = fn(&[u8]) -> Outcome;
    let targets: [(&str, Check); 6] = [
        ("uwsgi_packet", check_uwsgi_packet),
        ("uwsgi_vars", check_uwsgi_vars),
        ("config", check_config),
        ("cache_packet", check_cache_packet),
        ("http_head", check_http_head),
        ("chunked_decoder", check_chunked),
    ];
    for (target, check) in targets {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .join(target);
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            check(&std::fs::read(&path).unwrap());
            files += 1;
        }
        assert!(files > 0, "no seeds in {}", dir.display());
    }
}

/// Seeds whose outcome is part of the rules: accepted ones must stay accepted, refused ones
/// refused.
#[test]
fn seed_outcomes() {
    let expected: &[(&str, &str, Outcome)] = &[
        ("config", "empty_key", Outcome::Rejected),
        ("config", "ini", Outcome::Accepted),
        ("config", "bad_json", Outcome::Rejected),
        ("uwsgi_vars", "request", Outcome::Accepted),
        ("uwsgi_vars", "too_many", Outcome::Rejected),
        ("uwsgi_vars", "zero_key", Outcome::Rejected),
        ("chunked_decoder", "simple", Outcome::Accepted),
        ("chunked_decoder", "ext_trailer", Outcome::Accepted),
        ("chunked_decoder", "ext_bws", Outcome::Accepted),
        ("chunked_decoder", "ext_trailing_ws", Outcome::Rejected),
        ("chunked_decoder", "ext_bare_cr", Outcome::Rejected),
        ("chunked_decoder", "ext_unterminated", Outcome::Rejected),
        ("chunked_decoder", "ext_no_value", Outcome::Rejected),
        ("chunked_decoder", "ext_too_long", Outcome::Rejected),
        ("chunked_decoder", "forbidden", Outcome::Rejected),
        ("chunked_decoder", "overflow", Outcome::Rejected),
        ("uwsgi_packet", "empty_packet", Outcome::Accepted),
        ("uwsgi_packet", "empty_packet_path_info", Outcome::Accepted),
        ("uwsgi_packet", "zero_key", Outcome::Rejected),
        ("cache_packet", "magic_get", Outcome::Accepted),
        ("cache_packet", "magic_set", Outcome::Accepted),
        ("cache_packet", "magic_size_over_max", Outcome::Rejected),
        ("http_head", "get", Outcome::Accepted),
        ("http_head", "method_dash", Outcome::Accepted),
        ("http_head", "method_long", Outcome::Accepted),
        ("http_head", "method_symbols", Outcome::Accepted),
        ("http_head", "method_lower", Outcome::Rejected),
        ("http_head", "method_dash_lower", Outcome::Rejected),
        ("http_head", "method_tchar", Outcome::Rejected),
    ];
    for (target, name, want) in expected {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("seeds")
            .join(target)
            .join(name);
        let data = std::fs::read(&path).unwrap();
        let check = match *target {
            "chunked_decoder" => check_chunked,
            "http_head" => check_http_head,
            "cache_packet" => check_cache_packet,
            "uwsgi_vars" => check_uwsgi_vars,
            "config" => check_config,
            _ => check_uwsgi_packet,
        };
        assert_eq!(check(&data), *want, "{}", path.display());
    }
}
