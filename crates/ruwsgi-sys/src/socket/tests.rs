//! Address parsing, binding and the re-exec fd hand-over.

use std::os::fd::{AsFd, IntoRawFd};

use super::*;

#[test]
fn parses_the_address_forms() {
    let p = parse_addr(":3031").unwrap();
    assert_eq!(p.addr, BindAddr::Tcp("127.0.0.1:3031".parse().unwrap()));
    assert!(p.loopback_default);
    let p = parse_addr("0.0.0.0:80").unwrap();
    assert_eq!(p.addr, BindAddr::Tcp("0.0.0.0:80".parse().unwrap()));
    assert!(!p.loopback_default);
    assert_eq!(
        parse_addr("[::1]:8080").unwrap().addr,
        BindAddr::Tcp("[::1]:8080".parse().unwrap())
    );
    assert_eq!(
        parse_addr("/tmp/x.sock").unwrap().addr,
        BindAddr::Unix("/tmp/x.sock".into())
    );
    assert_eq!(
        parse_addr("app.sock").unwrap().addr,
        BindAddr::Unix("app.sock".into())
    );
    assert_eq!(
        parse_addr("@name").unwrap().addr,
        BindAddr::Abstract(b"name".to_vec())
    );
    match parse_addr("localhost:9000").unwrap().addr {
        BindAddr::Tcp(sa) => {
            assert!(sa.ip().is_loopback());
            assert_eq!(sa.port(), 9000);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(parse_addr(""), Err(AddrError::Empty)));
    assert!(matches!(parse_addr(":99999"), Err(AddrError::BadPort(_))));
    assert!(matches!(
        parse_addr("localhost"),
        Err(AddrError::MissingPort(_))
    ));
}

fn opts(unix_mode: u32) -> ListenOptions {
    ListenOptions {
        backlog: 10,
        unix_mode,
        ..ListenOptions::DEFAULT
    }
}

fn defer_accept_of(fd: BorrowedFd<'_>) -> libc::c_int {
    let mut v: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is an open socket; `v` and `len` outlive the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::addr_of_mut!(v).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0);
    v
}

#[test]
fn tcp_listeners_defer_accept_unless_told_not_to() {
    let addr = parse_addr("127.0.0.1:0").unwrap().addr;
    let on = bind_listener(&addr, opts(0o660)).unwrap();
    // The kernel reports the timeout rounded to its SYN-ACK retransmission schedule.
    assert!(defer_accept_of(on.as_fd()) > 0);
    let off = bind_listener(
        &addr,
        ListenOptions {
            defer_accept_secs: 0,
            ..opts(0o660)
        },
    )
    .unwrap();
    assert_eq!(defer_accept_of(off.as_fd()), 0);
    // A deferred listener still hands over a connection once its first bytes arrive.
    let name = local_addr(on.as_fd()).unwrap();
    let mut c = std::net::TcpStream::connect(&name).unwrap();
    std::io::Write::write_all(&mut c, b"x").unwrap();
    let mut pfd = [nix::poll::PollFd::new(
        on.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    assert_eq!(nix::poll::poll(&mut pfd, 5000u16).unwrap(), 1);
}

#[test]
fn binds_tcp_port_zero_and_reports_the_real_port() {
    let fd = bind_listener(&parse_addr("127.0.0.1:0").unwrap().addr, opts(0o660)).unwrap();
    let addr = local_addr(fd.as_fd()).unwrap();
    assert!(addr.starts_with("127.0.0.1:"));
    assert_ne!(addr, "127.0.0.1:0");
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_eq!(flags & libc::FD_CLOEXEC, 0, "listeners must survive exec");
}

#[test]
fn binds_unix_replacing_a_stale_file() {
    let dir = std::env::temp_dir().join(format!("ruwsgi-sys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    let addr = BindAddr::Unix(path.clone());
    let first = bind_listener(&addr, opts(0o600)).unwrap();
    assert!(
        bind_listener(&addr, opts(0o600)).is_err(),
        "live socket must not be replaced"
    );
    drop(first);
    let second = bind_listener(&addr, opts(0o600)).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        local_addr(second.as_fd()).unwrap(),
        path.display().to_string()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn listen_fds_round_trip() {
    let fd = bind_listener(&parse_addr("127.0.0.1:0").unwrap().addr, opts(0o660)).unwrap();
    let enc = encode_listen_fds(&[(fd.as_fd(), "127.0.0.1:0"), (fd.as_fd(), "/a,b%c.sock")]);
    let dec = decode_listen_fds(&enc).unwrap();
    assert_eq!(dec[0].address, "127.0.0.1:0");
    assert_eq!(dec[1].address, "/a,b%c.sock");
    assert_eq!(dec[0].fd_number, dec[1].fd_number);
    assert!(decode_listen_fds("x:1").is_err());
    assert!(decode_listen_fds("").unwrap().is_empty());
}

#[test]
fn inherited_listener_is_adopted_only_on_a_matching_address() {
    let wanted = parse_addr("127.0.0.1:0").unwrap().addr;
    let fd = bind_listener(&wanted, opts(0o660)).unwrap();
    let real = bound_addr(fd.as_fd()).unwrap();
    let value = encode_listen_fds(&[(fd.as_fd(), "127.0.0.1:0")]);
    let _released = fd.into_raw_fd();
    // SAFETY: the fd was released from its only owner just above; nothing else owns it.
    let mut set = unsafe { InheritedListeners::from_value(&value) };
    assert_eq!(set.len(), 1);
    assert!(set.take("other:1", &wanted).is_none());
    let other = BindAddr::Tcp("127.0.0.2:1".parse().unwrap());
    assert!(set.take("127.0.0.1:0", &other).is_none());
    let adopted = set.take("127.0.0.1:0", &wanted).unwrap();
    assert_eq!(bound_addr(adopted.as_fd()).unwrap(), real);
    assert!(set.is_empty());
}
