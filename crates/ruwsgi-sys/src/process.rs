//! The process itself: parent-death signal, `_exit`, title, privileges.
//!
//! Design decision: the process title is written through `/proc/self/mem` into the argv
//! area the kernel reports in `/proc/self/stat` (fields `arg_start`/`arg_end`), and only
//! while the process is single-threaded, so no Rust reference or concurrent reader can
//! observe the bytes changing. Like uWSGI, the title may also take the bytes of the
//! environment strings that follow argv, once [`release_environ_area`] has moved them to
//! the heap (the binary does it first thing, while single-threaded); beyond that area the
//! title is truncated, and it is NUL-padded.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::signal::Signal;
use nix::unistd::{Gid, Group, Pid, Uid, User};

/// Ask the kernel to send `sig` to this process when its parent dies (`PR_SET_PDEATHSIG`),
/// then close the race with a parent that died before the call: if `getppid()` is no longer
/// `parent`, exit at once with status 1.
///
/// The signal fires when the parent *thread* that forked us exits; the ruwsgi master is
/// single-threaded, so that is the master process.
pub fn set_parent_death_signal(sig: Signal, parent: Pid) -> io::Result<()> {
    nix::sys::prctl::set_pdeathsig(sig)?;
    if nix::unistd::getppid() != parent {
        exit_now(1);
    }
    Ok(())
}

/// Leave the process immediately with `code` (`_exit(2)`): no destructors, no atexit
/// handlers, no stdio flushing. How every forked child ends.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe; skipping destructors is the
    // point (the child must not run the parent's cleanup).
    unsafe { libc::_exit(code) }
}

/// True when the effective uid is 0.
pub fn is_root() -> bool {
    Uid::effective().is_root()
}

/// This process's pid.
pub fn pid() -> Pid {
    nix::unistd::getpid()
}

/// Memory of process `pid` (`None`: this one), in bytes: (resident set, address space),
/// from `/proc/PID/statm`.
pub fn memory(pid: Option<Pid>) -> io::Result<(u64, u64)> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/statm"),
        None => "/proc/self/statm".to_string(),
    };
    let text = fs::read_to_string(path)?;
    let mut fields = text.split_ascii_whitespace().map(str::parse::<u64>);
    let (Some(Ok(size)), Some(Ok(resident))) = (fields.next(), fields.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected statm format",
        ));
    };
    // SAFETY: sysconf only reads a configuration value.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    Ok((resident * page, size * page))
}

/// Set the process title: the 15-byte `comm` (`PR_SET_NAME`, shown by `top` and
/// `ps -o comm`) and, when the process is single-threaded, the argv area (shown by
/// `ps -o args`), truncated to the original argv area (with the environment strings' room
/// after [`release_environ_area`]) and NUL-padded.
///
/// After the argv area is overwritten, `std::env::args()` returns the title: capture argv
/// before calling this if it is needed later (the master does, for its re-exec).
pub fn set_process_title(title: &str) {
    let comm: Vec<u8> = title.bytes().filter(|&b| b != 0).take(15).collect();
    if let Ok(comm) = CString::new(comm) {
        let _ = nix::sys::prctl::set_name(&comm);
    }
    let _ = write_argv_area(title);
}

/// End of the environment strings once [`release_environ_area`] moved them out of the way
/// (0 until then): the title may extend up to it.
static TITLE_AREA_END: AtomicU64 = AtomicU64::new(0);

/// Give the process title the room of the environment strings that follow argv, as uWSGI
/// does: copy each of them to the heap and point `environ` at the copies, so the original
/// bytes are no longer read by anyone. Does nothing when the strings do not directly follow
/// argv. On failure (out of memory) nothing is changed and the title stays within argv.
///
/// # Safety
///
/// The process must be single-threaded, and nothing may hold a pointer into the
/// environment taken before the call (a `getenv` result kept across it): `environ` is
/// rewritten in place. Call it first thing in `main`.
pub unsafe fn release_environ_area() -> io::Result<()> {
    let stat = fs::read_to_string("/proc/self/stat")?;
    let f = parse_stat(&stat).ok_or(io::ErrorKind::InvalidData)?;
    if f.threads != 1 || f.env_start != f.arg_end || f.env_end <= f.env_start {
        return Ok(());
    }
    let inside = |p: *mut libc::c_char| {
        let a = p as usize as u64;
        a >= f.env_start && a < f.env_end
    };
    // SAFETY: single-threaded (the caller's contract), so nobody reads or writes `environ`
    // concurrently; it is a NULL-terminated array of C strings that the C library set up.
    let env = unsafe { libc::environ };
    if env.is_null() {
        return Ok(());
    }
    let mut copies: Vec<(usize, *mut libc::c_char)> = Vec::new();
    let mut i = 0;
    loop {
        // SAFETY: `i` never passes the terminating NULL entry of the array.
        let s = unsafe { *env.add(i) };
        if s.is_null() {
            break;
        }
        if inside(s) {
            // SAFETY: `s` is a NUL-terminated string of the environment.
            let copy = unsafe { libc::strdup(s) };
            if copy.is_null() {
                for (_, c) in copies {
                    // SAFETY: each was returned by strdup above and is not used elsewhere.
                    unsafe { libc::free(c.cast()) };
                }
                return Err(io::ErrorKind::OutOfMemory.into());
            }
            copies.push((i, copy));
        }
        i += 1;
    }
    for (i, copy) in copies {
        // SAFETY: `i` indexes an entry of the array counted above; the copies are leaked on
        // purpose (the environment lives as long as the process).
        unsafe { *env.add(i) = copy };
    }
    TITLE_AREA_END.store(f.env_end, Ordering::Relaxed);
    Ok(())
}

fn write_argv_area(title: &str) -> io::Result<()> {
    let stat = fs::read_to_string("/proc/self/stat")?;
    let f = parse_stat(&stat).ok_or(io::ErrorKind::InvalidData)?;
    let (threads, start) = (f.threads, f.arg_start);
    let end = match TITLE_AREA_END.load(Ordering::Relaxed) {
        // The kernel shows a title that overflows argv only into the environment area.
        moved if moved > f.arg_end && f.env_start == f.arg_end => moved,
        _ => f.arg_end,
    };
    if threads != 1 || end <= start {
        return Ok(());
    }
    let area = usize::try_from(end - start).map_err(|_| io::ErrorKind::InvalidData)?;
    let mut bytes = vec![0u8; area];
    let keep = title.len().min(area - 1);
    bytes[..keep].copy_from_slice(&title.as_bytes()[..keep]);
    for b in &mut bytes[..keep] {
        if *b == 0 {
            *b = b' ';
        }
    }
    let mem = fs::OpenOptions::new().write(true).open("/proc/self/mem")?;
    mem.write_all_at(&bytes, start)
}

/// What [`parse_stat`] reads of `/proc/self/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatFields {
    threads: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
}

/// From `/proc/self/stat`: num_threads and the argv and environment areas. Fields are
/// counted after the `)` that closes `comm`, which may itself contain spaces and
/// parentheses.
fn parse_stat(stat: &str) -> Option<StatFields> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state); field N is at index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(StatFields {
        threads: field(20)?,
        arg_start: field(48)?,
        arg_end: field(49)?,
        env_start: field(50)?,
        env_end: field(51)?,
    })
}

/// Resident set size and virtual size, in bytes, from a `statm` line (`size resident ...`,
/// in pages).
fn parse_statm(text: &str, page: u64) -> Option<(u64, u64)> {
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<u64>().ok());
    let size = fields.next()??;
    let resident = fields.next()??;
    Some((resident.saturating_mul(page), size.saturating_mul(page)))
}

fn page_bytes() -> u64 {
    crate::memory::page_size() as u64
}

/// This process's memory use, read with one `pread` of `/proc/self/statm` kept open
/// (`memory-report`: a worker samples after every request). Open it in the process it
/// describes: `/proc/self` is resolved when the file is opened.
#[derive(Debug)]
pub struct MemorySampler {
    file: fs::File,
    page: u64,
    buf: [u8; 128],
}

impl MemorySampler {
    /// Open `/proc/self/statm` for this process.
    pub fn open() -> io::Result<MemorySampler> {
        Ok(MemorySampler {
            file: fs::File::open("/proc/self/statm")?,
            page: page_bytes(),
            buf: [0; 128],
        })
    }

    /// (rss, vsz) in bytes, now.
    pub fn sample(&mut self) -> io::Result<(u64, u64)> {
        let n = self.file.read_at(&mut self.buf, 0)?;
        std::str::from_utf8(&self.buf[..n])
            .ok()
            .and_then(|text| parse_statm(text, self.page))
            .ok_or_else(|| io::ErrorKind::InvalidData.into())
    }
}

/// Why [`drop_privileges`] failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// A uid/gid change was asked for while not running as root.
    #[error("cannot switch to uid/gid {0}: not running as root")]
    NotRoot(String),
    /// No such user.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// No such group.
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    /// A system call failed.
    #[error("{call} failed: {errno}")]
    Sys {
        /// The call (`setgroups`, `setgid`, `setuid`, `getpwnam`).
        call: &'static str,
        /// Its error.
        errno: nix::errno::Errno,
    },
}

fn resolve_user(spec: &str) -> Result<User, PrivilegeError> {
    let found = match spec.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n)),
        Err(_) => User::from_name(spec),
    };
    match found {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(PrivilegeError::UnknownUser(spec.to_string())),
        Err(errno) => Err(PrivilegeError::Sys {
            call: "getpwnam",
            errno,
        }),
    }
}

fn resolve_group(spec: &str) -> Result<Gid, PrivilegeError> {
    if let Ok(n) = spec.parse::<u32>() {
        return Ok(Gid::from_raw(n));
    }
    match Group::from_name(spec) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(PrivilegeError::UnknownGroup(spec.to_string())),
        Err(errno) => Err(PrivilegeError::Sys {
            call: "getgrnam",
            errno,
        }),
    }
}

/// Switch to `uid`/`gid` (names or numbers): clear supplementary groups, `setgid`, then
/// `setuid`, in that order. With only `uid`, the user's primary group is used (a numeric uid
/// without a passwd entry keeps the current gid). Nothing asked → `Ok`. When not root, the
/// call succeeds only if the process already runs as the requested ids (a re-exec'd master
/// after its first drop), and fails with [`PrivilegeError::NotRoot`] otherwise.
pub fn drop_privileges(uid: Option<&str>, gid: Option<&str>) -> Result<(), PrivilegeError> {
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    let (target_uid, user_gid) = match uid {
        Some(spec) => match resolve_user(spec) {
            Ok(u) => (Some(u.uid), Some(u.gid)),
            Err(PrivilegeError::UnknownUser(_)) if spec.parse::<u32>().is_ok() => {
                (spec.parse::<u32>().ok().map(Uid::from_raw), None)
            }
            Err(e) => return Err(e),
        },
        None => (None, None),
    };
    let target_gid = match gid {
        Some(spec) => Some(resolve_group(spec)?),
        None => user_gid,
    };
    if !is_root() {
        let uid_ok = target_uid.is_none_or(|u| u == Uid::current() && u == Uid::effective());
        let gid_ok = target_gid.is_none_or(|g| g == Gid::current() && g == Gid::effective());
        if uid_ok && gid_ok {
            return Ok(());
        }
        return Err(PrivilegeError::NotRoot(format!(
            "{}:{}",
            uid.unwrap_or("-"),
            gid.unwrap_or("-")
        )));
    }
    nix::unistd::setgroups(&[]).map_err(|errno| PrivilegeError::Sys {
        call: "setgroups",
        errno,
    })?;
    if let Some(g) = target_gid {
        nix::unistd::setgid(g).map_err(|errno| PrivilegeError::Sys {
            call: "setgid",
            errno,
        })?;
    }
    if let Some(u) = target_uid {
        nix::unistd::setuid(u).map_err(|errno| PrivilegeError::Sys {
            call: "setuid",
            errno,
        })?;
    }
    Ok(())
}

/// Mark every open fd above 2 close-on-exec except those in `keep` (the master before it
/// re-execs: only the listening sockets and stdio survive, whatever the app opened).
pub fn mark_cloexec_except(keep: &[std::os::fd::BorrowedFd<'_>]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let keep: Vec<i32> = keep.iter().map(|fd| fd.as_raw_fd()).collect();
    let mut fds = Vec::new();
    for entry in fs::read_dir("/proc/self/fd")? {
        if let Some(n) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        {
            fds.push(n);
        }
    }
    for fd in fds.into_iter().filter(|&fd| fd > 2 && !keep.contains(&fd)) {
        // SAFETY: F_SETFD only changes the close-on-exec flag of the descriptor (or fails
        // with EBADF if it was the directory fd now closed); it does not close or alias it,
        // so no owner of that fd is affected until exec replaces the process image.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_of_this_process() {
        let (rss, vsz) = memory(None).unwrap();
        assert!(rss > 0 && vsz >= rss, "{rss} {vsz}");
        let (rss2, _) = memory(Some(pid())).unwrap();
        assert!(rss2 > 0);
        assert!(memory(Some(Pid::from_raw(i32::MAX))).is_err());
    }

    #[test]
    fn stat_parsing_skips_odd_comm() {
        let mut s = String::from("123 (a b) c)) S");
        for n in 4..=52 {
            s.push_str(&format!(" {n}"));
        }
        assert_eq!(
            parse_stat(&s),
            Some(StatFields {
                threads: 20,
                arg_start: 48,
                arg_end: 49,
                env_start: 50,
                env_end: 51
            })
        );
    }

    #[test]
    fn real_stat_parses() {
        let s = fs::read_to_string("/proc/self/stat").unwrap();
        let f = parse_stat(&s).unwrap();
        assert!(f.threads >= 1);
        assert!(f.arg_end > f.arg_start);
        assert!(f.env_end >= f.env_start);
    }

    #[test]
    fn memory_of_self() {
        assert_eq!(
            parse_statm("10 3 1 1 0 5 0\n", 4096),
            Some((3 * 4096, 10 * 4096))
        );
        assert_eq!(parse_statm("x", 4096), None);
        let (rss, vsz) = MemorySampler::open().unwrap().sample().unwrap();
        assert!(rss > 0 && vsz >= rss);
    }

    #[test]
    fn nothing_to_drop_is_ok() {
        assert!(drop_privileges(None, None).is_ok());
    }

    #[test]
    fn dropping_to_self_is_ok_when_not_root() {
        if is_root() {
            return;
        }
        let me = Uid::current().as_raw().to_string();
        assert!(drop_privileges(Some(&me), None).is_ok());
        assert!(matches!(
            drop_privileges(Some("0"), None),
            Err(PrivilegeError::NotRoot(_))
        ));
    }
}
