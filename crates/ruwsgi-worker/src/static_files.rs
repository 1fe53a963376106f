//! Static files: `static-map`, `static-map2` and `static-check`, answered by the core's own
//! loop before the language plugin is asked, with `sendfile` and without the interpreter.
//!
//! # Which requests
//! Only GET and HEAD. The maps are tried in option order (maps first, then the
//! `static-check` roots); a map whose mountpoint is a prefix of `PATH_INFO` ending at a `/`
//! (or at the end) is a candidate. The first candidate that names an existing regular file
//! (or a directory holding one of the `static-index` names) answers; a path that names
//! nothing falls through to the next candidate and finally to the app, as uWSGI does.
//! A request no map matches costs one prefix comparison per map and nothing else.
//!
//! # Traversal
//! `PATH_INFO` is already percent-decoded once (by the HTTP parser, or by nginx); it is
//! never decoded again. A candidate path holding NUL, a backslash or a `..` segment is
//! refused with 403 outright. Files are opened with `openat2(RESOLVE_BENEATH)` relative to
//! the mapped directory's descriptor, so the kernel itself refuses any resolution (a
//! symlink included) that leaves the directory. When it does (or on kernels without
//! `openat2`), the path is resolved with `realpath` and served only if the result lies,
//! component-wise, under the mapped directory or a `static-safe` one; otherwise 403.
//! `/srv/static-private` is never "under" `/srv/static`.
//!
//! # Responses
//! `Last-Modified`, a strong `ETag` (inode, size and mtime with nanoseconds),
//! `Accept-Ranges: bytes`, `Content-Type` from the MIME table, optional `Expires` with
//! `Cache-Control: max-age`, and for `static-gzip` the `.gz` sibling with
//! `Content-Encoding: gzip` and `Vary: Accept-Encoding`. `If-None-Match` (then, without it,
//! `If-Modified-Since`) gives 304; one `Range: bytes=` range gives 206 (`If-Range`
//! honoured), an unsatisfiable one 416, several ranges the whole file with 200.
//!
//! # Offloading
//! With `offload-threads N`, each worker runs N threads; a GET response of at least
//! [`OFFLOAD_MIN`] bytes has its head sent by the core, and its body sent by one of these
//! threads, which then closes the connection (the head says `Connection: close`). The
//! core goes back to its loop at once.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, SFlag};
use ruwsgi_config::settings::{ExpiresRule, StaticSettings};
use ruwsgi_proto::Vars;
use ruwsgi_sys::log::log_line;

use crate::response::{sendfile_all, Response, ResponseContext};
use crate::stream::Stream;

/// Bodies at least this big go to an offload thread when `offload-threads` is set.
pub const OFFLOAD_MIN: u64 = 64 * 1024;

/// What a mapping points at.
#[derive(Debug)]
enum Base {
    /// A directory, held open (`O_PATH`) for `openat2`, and its canonical path.
    Dir { fd: OwnedFd, path: PathBuf },
    /// A single file (`static-map = /favicon.ico=/srv/favicon.ico`), canonical path.
    File(PathBuf),
}

#[derive(Debug)]
struct Map {
    /// The URL prefix, without a trailing `/` (empty for `static-check`).
    prefix: Vec<u8>,
    /// Append the whole `PATH_INFO` (`static-map2`, `static-check`) or only what follows
    /// the prefix (`static-map`).
    keep_prefix: bool,
    base: Base,
}

/// A body handed to an offload thread.
struct Job {
    socket: OwnedFd,
    file: File,
    offset: u64,
    len: u64,
    timeout: Duration,
}

/// The compiled static-file configuration of one worker (shared by its cores).
#[derive(Debug)]
pub struct StaticFiles {
    maps: Vec<Map>,
    index: Vec<String>,
    skip_ext: Vec<Vec<u8>>,
    safe: Vec<PathBuf>,
    expires_type: Vec<(String, u64)>,
    expires_file: Vec<ExpiresRule>,
    expires_uri: Vec<ExpiresRule>,
    expires_path_info: Vec<ExpiresRule>,
    gzip: Vec<regex::Regex>,
    gzip_all: bool,
    mime: HashMap<String, String>,
    offload: Option<Mutex<Sender<Job>>>,
}

/// What [`StaticFiles::serve`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Not a static file: the app answers.
    NotMine,
    /// Answered (200, 206, 304, 403, 416); the connection may be kept.
    Done,
    /// The head went out and an offload thread sends the body and closes the connection:
    /// the core must forget the connection (take it out of its epoll, close its fd).
    Offloaded,
}

/// A file found for a request.
struct Found {
    file: File,
    stat: FileStat,
    /// The path under the map directory actually opened (an index file's, for a
    /// directory), for the MIME type and the `static-gzip` / `static-expires` rules.
    rel: Vec<u8>,
}

/// How a candidate path resolved.
enum Resolved {
    Found(Found),
    Missing,
    Forbidden,
}

impl StaticFiles {
    /// Compile the settings. Maps whose directory cannot be opened are skipped with a log
    /// line (their requests go to the app); `None` when nothing is left to serve.
    pub fn new(s: &StaticSettings, worker: u32) -> Option<StaticFiles> {
        if !s.enabled() {
            return None;
        }
        let mut maps = Vec::new();
        let entries = s
            .maps
            .iter()
            .map(|m| (m.mountpoint.as_str(), m.dir.as_path(), m.keep_mountpoint))
            .chain(s.check.iter().map(|d| ("", d.as_path(), true)));
        for (mountpoint, dir, keep_prefix) in entries {
            match open_base(dir) {
                Ok(base) => maps.push(Map {
                    prefix: mountpoint.trim_end_matches('/').as_bytes().to_vec(),
                    keep_prefix,
                    base,
                }),
                Err(e) => {
                    if worker <= 1 {
                        log_line(&format!(
                            "ruwsgi: static files: cannot use {} for '{mountpoint}': {e}; \
                             its requests go to the app",
                            dir.display()
                        ));
                    }
                }
            }
        }
        if maps.is_empty() {
            return None;
        }
        let mut mime = builtin_mime();
        let files: Vec<(PathBuf, bool)> = if s.mimefiles.is_empty() {
            vec![(PathBuf::from("/etc/mime.types"), false)]
        } else {
            s.mimefiles.iter().map(|p| (p.clone(), true)).collect()
        };
        for (path, explicit) in files {
            match std::fs::read(&path) {
                Ok(text) => parse_mime_types(&text, &mut mime),
                Err(e) if explicit && worker <= 1 => log_line(&format!(
                    "ruwsgi: static files: cannot read mimefile {}: {e}",
                    path.display()
                )),
                Err(_) => {}
            }
        }
        let offload = (s.offload_threads > 0).then(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for i in 0..s.offload_threads {
                let rx = Arc::clone(&rx);
                let spawned = std::thread::Builder::new()
                    .name(format!("offload {i}"))
                    .spawn(move || offload_loop(&rx));
                if let Err(e) = spawned {
                    log_line(&format!("ruwsgi: cannot start offload thread {i}: {e}"));
                }
            }
            Mutex::new(tx)
        });
        Some(StaticFiles {
            maps,
            index: s.index.clone(),
            skip_ext: s.skip_ext.iter().map(|e| e.as_bytes().to_vec()).collect(),
            safe: s
                .safe
                .iter()
                .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
                .collect(),
            expires_type: s.expires_type.clone(),
            expires_file: s.expires_file.clone(),
            expires_uri: s.expires_uri.clone(),
            expires_path_info: s.expires_path_info.clone(),
            gzip: s.gzip.clone(),
            gzip_all: s.gzip_all,
            mime,
            offload,
        })
    }

    /// Whether some map's prefix matches `path` (the only check paid by other requests).
    pub fn candidate(&self, path: &[u8]) -> bool {
        self.maps
            .iter()
            .any(|m| rest_after(&m.prefix, path).is_some())
    }

    /// Answer the request in `vars` if it is for a static file.
    pub fn serve(
        &self,
        vars: &Vars,
        resp: &mut Response,
        stream: &mut Stream,
        ctx: &mut ResponseContext,
    ) -> Served {
        let method = vars.get(b"REQUEST_METHOD").unwrap_or(b"");
        if method != b"GET" && method != b"HEAD" {
            return Served::NotMine;
        }
        let path = vars.get(b"PATH_INFO").unwrap_or(b"");
        let mut rel = Vec::new();
        for map in &self.maps {
            let Some(rest) = rest_after(&map.prefix, path) else {
                continue;
            };
            if !safe_path(path) {
                log_line(&format!(
                    "ruwsgi: static files: refused path {:?} (.., backslash or NUL)",
                    String::from_utf8_lossy(path)
                ));
                return self.forbidden(resp, stream, ctx);
            }
            if self.skip_ext.iter().any(|e| path.ends_with(e)) {
                return Served::NotMine;
            }
            let wanted = if map.keep_prefix { path } else { rest };
            rel.clear();
            rel.extend_from_slice(trim_slashes(wanted));
            let resolved = match &map.base {
                Base::File(p) => {
                    if rest.is_empty() {
                        open_plain(p)
                    } else {
                        Resolved::Missing
                    }
                }
                Base::Dir { fd, path: dir } => self.resolve_dir(fd, dir, &rel, true),
            };
            match resolved {
                Resolved::Missing => continue,
                Resolved::Forbidden => return self.forbidden(resp, stream, ctx),
                Resolved::Found(found) => {
                    return self.respond(map, found, vars, resp, stream, ctx);
                }
            }
        }
        Served::NotMine
    }

    fn forbidden(&self, resp: &mut Response, stream: &mut Stream, ctx: &ResponseContext) -> Served {
        resp.send_error(403, stream, ctx);
        Served::Done
    }

    /// Open `rel` under the directory `fd` (canonical path `dir`); for a directory, try the
    /// `static-index` names when `index` is set.
    fn resolve_dir(&self, fd: &OwnedFd, dir: &Path, rel: &[u8], index: bool) -> Resolved {
        let name: &[u8] = if rel.is_empty() { b"." } else { rel };
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let opened = match openat2(fd, name, how) {
            Ok(f) => File::from(f),
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG) => return Resolved::Missing,
            Err(Errno::EACCES | Errno::EPERM) => return Resolved::Forbidden,
            // Leaves the directory (`EXDEV`: absolute or escaping symlink), or no openat2.
            Err(_) => return self.resolve_slow(dir, rel, index),
        };
        self.found(opened, dir, rel, index)
    }

    /// The `realpath` way: the canonical path must lie under `dir` or a `static-safe` one.
    fn resolve_slow(&self, dir: &Path, rel: &[u8], index: bool) -> Resolved {
        let full = dir.join(std::ffi::OsStr::from_bytes(rel));
        let real = match std::fs::canonicalize(&full) {
            Ok(r) => r,
            Err(_) => return Resolved::Missing,
        };
        if !real.starts_with(dir) && !self.safe.iter().any(|s| real.starts_with(s)) {
            log_line(&format!(
                "ruwsgi: static files: {} resolves to {}, outside {} and every static-safe \
                 directory -> 403",
                full.display(),
                real.display(),
                dir.display()
            ));
            return Resolved::Forbidden;
        }
        let opened = match open_nofollow(&real) {
            Ok(f) => f,
            Err(Errno::EACCES | Errno::EPERM) => return Resolved::Forbidden,
            Err(_) => return Resolved::Missing,
        };
        self.found(opened, dir, rel, index)
    }

    fn found(&self, file: File, dir: &Path, rel: &[u8], index: bool) -> Resolved {
        let Ok(stat) = fstat(file.as_fd()) else {
            return Resolved::Missing;
        };
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFREG {
            return Resolved::Found(Found {
                file,
                stat,
                rel: rel.to_vec(),
            });
        }
        if kind != SFlag::S_IFDIR || !index {
            return Resolved::Missing;
        }
        drop(file);
        for name in &self.index {
            let mut candidate = rel.to_vec();
            if !candidate.is_empty() {
                candidate.push(b'/');
            }
            candidate.extend_from_slice(trim_slashes(name.as_bytes()));
            match self.resolve_again(dir, &candidate) {
                Resolved::Missing => continue,
                other => return other,
            }
        }
        Resolved::Missing
    }

    /// Resolve `rel` under the map directory `dir` (used for index files and `.gz`
    /// siblings, which must be regular files).
    fn resolve_again(&self, dir: &Path, rel: &[u8]) -> Resolved {
        let base = self.maps.iter().find_map(|m| match &m.base {
            Base::Dir { fd, path } if path == dir => Some(fd),
            _ => None,
        });
        match base {
            Some(fd) => self.resolve_dir(fd, dir, rel, false),
            None => self.resolve_slow(dir, rel, false),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn respond(
        &self,
        map: &Map,
        mut found: Found,
        vars: &Vars,
        resp: &mut Response,
        stream: &mut Stream,
        ctx: &mut ResponseContext,
    ) -> Served {
        // The file's name: the resolved one for file maps, else the map path + rel.
        let rel = std::mem::take(&mut found.rel);
        let rel = rel.as_slice();
        let (dir, file_name): (&Path, PathBuf) = match &map.base {
            Base::File(p) => (p.parent().unwrap_or(Path::new("/")), p.clone()),
            Base::Dir { path, .. } => (path, path.join(std::ffi::OsStr::from_bytes(rel))),
        };
        let name_bytes = file_name.as_os_str().as_bytes();
        let content_type = self.mime_type(name_bytes);
        let name_text = String::from_utf8_lossy(name_bytes);

        // static-gzip: the `.gz` sibling, when the client takes gzip.
        let gzip_rule = self.gzip_all || self.gzip.iter().any(|r| r.is_match(&name_text));
        let mut gzipped = false;
        if gzip_rule && accepts_gzip(vars.get(b"HTTP_ACCEPT_ENCODING").unwrap_or(b"")) {
            let gz = match &map.base {
                Base::File(p) => {
                    let mut s = p.as_os_str().as_bytes().to_vec();
                    s.extend_from_slice(b".gz");
                    open_plain(Path::new(std::ffi::OsStr::from_bytes(&s)))
                }
                Base::Dir { .. } => {
                    let mut s = rel.to_vec();
                    s.extend_from_slice(b".gz");
                    self.resolve_again(dir, &s)
                }
            };
            if let Resolved::Found(f) = gz {
                found = f;
                gzipped = true;
            }
        }

        let st = &found.stat;
        let size = st.st_size.max(0) as u64;
        let mtime = st.st_mtime;
        let etag = format!(
            "\"{:x}-{:x}-{:x}.{:x}\"",
            st.st_ino, size, mtime, st.st_mtime_nsec
        );
        let last_modified = http_date(mtime);
        let expires = self.expires(content_type, &name_text, vars);

        // Conditional requests (RFC 9110 §13.2.2): If-None-Match, else If-Modified-Since.
        let not_modified = match vars.get(b"HTTP_IF_NONE_MATCH") {
            Some(inm) => etag_matches(inm, etag.as_bytes()),
            None => vars
                .get(b"HTTP_IF_MODIFIED_SINCE")
                .and_then(parse_http_date)
                .is_some_and(|since| mtime <= since),
        };
        let range = if not_modified {
            RangeAnswer::Whole
        } else {
            match vars.get(b"HTTP_RANGE") {
                Some(r) if if_range_holds(vars.get(b"HTTP_IF_RANGE"), &etag, &last_modified) => {
                    parse_range(r, size)
                }
                _ => RangeAnswer::Whole,
            }
        };
        let (status, offset, len): (&[u8], u64, u64) = if not_modified {
            (b"304 Not Modified", 0, 0)
        } else {
            match range {
                RangeAnswer::Whole => (b"200 OK", 0, size),
                RangeAnswer::Part(a, b) => (b"206 Partial Content", a, b - a + 1),
                RangeAnswer::Unsatisfiable => (b"416 Range Not Satisfiable", 0, 0),
            }
        };
        let offload = self
            .offload
            .as_ref()
            .filter(|_| !not_modified && !ctx.head_only && len >= OFFLOAD_MIN && status[0] == b'2');
        if offload.is_some() {
            ctx.keep_alive = false;
        }
        if resp.start(status, ctx).is_err() {
            resp.must_close = true;
            return Served::Done;
        }
        if status[0] != b'4' {
            add(resp, b"Content-Type", content_type.as_bytes());
            add(resp, b"Last-Modified", last_modified.as_bytes());
            add(resp, b"ETag", etag.as_bytes());
            if let Some(secs) = expires {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs() as i64;
                add(
                    resp,
                    b"Expires",
                    http_date(now.saturating_add(secs as i64)).as_bytes(),
                );
                add(resp, b"Cache-Control", format!("max-age={secs}").as_bytes());
            }
        }
        add(resp, b"Accept-Ranges", b"bytes");
        if gzipped {
            add(resp, b"Content-Encoding", b"gzip");
        }
        if gzip_rule {
            add(resp, b"Vary", b"Accept-Encoding");
        }
        match range {
            _ if not_modified => {
                let _ = resp.finish(stream, ctx);
                return Served::Done;
            }
            RangeAnswer::Unsatisfiable => {
                add(resp, b"Content-Range", format!("bytes */{size}").as_bytes());
                add(resp, b"Content-Type", b"text/plain");
                let _ = resp.write(b"416 Range Not Satisfiable\n", stream, ctx);
                let _ = resp.finish(stream, ctx);
                return Served::Done;
            }
            RangeAnswer::Part(a, b) => {
                add(
                    resp,
                    b"Content-Range",
                    format!("bytes {a}-{b}/{size}").as_bytes(),
                );
            }
            RangeAnswer::Whole => {}
        }
        let mut length = Vec::with_capacity(20);
        crate::decimal::push_u64(&mut length, len);
        let _ = resp.header(b"Content-Length", &length);
        if let Some(tx) = offload {
            if resp.flush(stream, ctx).is_err() {
                return Served::Done;
            }
            let socket = match stream.as_fd().try_clone_to_owned() {
                Ok(s) => s,
                Err(_) => {
                    resp.must_close = true;
                    return Served::Done;
                }
            };
            resp.body_bytes = len;
            let job = Job {
                socket,
                file: found.file,
                offset,
                len,
                timeout: ctx.timeout,
            };
            let sent = tx.lock().map(|tx| tx.send(job).is_ok()).unwrap_or(false);
            if !sent {
                resp.must_close = true;
                return Served::Done;
            }
            return Served::Offloaded;
        }
        let _ = resp.send_file(found.file.as_fd(), offset, Some(len), stream, ctx);
        let _ = resp.finish(stream, ctx);
        Served::Done
    }

    /// The `Content-Type` for a file name, from its extension.
    fn mime_type(&self, name: &[u8]) -> &str {
        let base = match memchr::memrchr(b'/', name) {
            Some(i) => &name[i + 1..],
            None => name,
        };
        let ext = match memchr::memrchr(b'.', base) {
            Some(i) if i + 1 < base.len() => &base[i + 1..],
            _ => return "application/octet-stream",
        };
        let mut buf = [0u8; 32];
        if ext.len() > buf.len() {
            return "application/octet-stream";
        }
        for (d, s) in buf.iter_mut().zip(ext) {
            *d = s.to_ascii_lowercase();
        }
        std::str::from_utf8(&buf[..ext.len()])
            .ok()
            .and_then(|e| self.mime.get(e))
            .map_or("application/octet-stream", String::as_str)
    }

    /// The first expiry rule that applies: by type, file name, `REQUEST_URI`, `PATH_INFO`.
    fn expires(&self, content_type: &str, file_name: &str, vars: &Vars) -> Option<u64> {
        if let Some((_, s)) = self
            .expires_type
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(content_type))
        {
            return Some(*s);
        }
        if let Some(r) = self
            .expires_file
            .iter()
            .find(|r| r.pattern.is_match(file_name))
        {
            return Some(r.seconds);
        }
        let text = |key: &[u8]| String::from_utf8_lossy(vars.get(key).unwrap_or(b"")).into_owned();
        if !self.expires_uri.is_empty() {
            let uri = text(b"REQUEST_URI");
            if let Some(r) = self.expires_uri.iter().find(|r| r.pattern.is_match(&uri)) {
                return Some(r.seconds);
            }
        }
        if !self.expires_path_info.is_empty() {
            let p = text(b"PATH_INFO");
            if let Some(r) = self
                .expires_path_info
                .iter()
                .find(|r| r.pattern.is_match(&p))
            {
                return Some(r.seconds);
            }
        }
        None
    }
}

/// Add a header the server composed (always valid).
fn add(resp: &mut Response, name: &[u8], value: &[u8]) {
    let _ = resp.header(name, value);
}

/// Open a static-map root: a directory (kept open for `openat2`) or a single file.
fn open_base(dir: &Path) -> std::io::Result<Base> {
    let path = std::fs::canonicalize(dir)?;
    let meta = std::fs::metadata(&path)?;
    if meta.is_dir() {
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        Ok(Base::Dir { fd, path })
    } else {
        Ok(Base::File(path))
    }
}

/// Open a canonical path with no symlink followed in any component, so that the tree
/// cannot be swapped under the containment check just made (`O_NOFOLLOW`, last component
/// only, on kernels without `openat2`).
fn open_nofollow(path: &Path) -> Result<File, Errno> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    match openat2(nix::fcntl::AT_FDCWD, path, how) {
        Err(Errno::ENOSYS) => {}
        other => return other.map(File::from),
    }
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY
            | OFlag::O_NONBLOCK
            | OFlag::O_NOFOLLOW,
        nix::sys::stat::Mode::empty(),
    )
    .map(File::from)
}

/// A file map's target (a regular file, configured by the operator).
fn open_plain(path: &Path) -> Resolved {
    let file = match nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(f) => File::from(f),
        Err(Errno::EACCES | Errno::EPERM) => return Resolved::Forbidden,
        Err(_) => return Resolved::Missing,
    };
    match fstat(file.as_fd()) {
        Ok(stat) if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG => {
            Resolved::Found(Found {
                file,
                stat,
                rel: Vec::new(),
            })
        }
        _ => Resolved::Missing,
    }
}

fn offload_loop(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let _ = sendfile_all(
            job.socket.as_fd(),
            job.file.as_fd(),
            job.offset,
            job.len,
            job.timeout,
            crate::stream::wait_fd,
        );
        // Dropping the socket closes the connection (the core already let go of it).
        drop(job);
    }
}

/// What follows `prefix` in `path` when the prefix matches at a segment boundary.
fn rest_after<'p>(prefix: &[u8], path: &'p [u8]) -> Option<&'p [u8]> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest[0] == b'/').then_some(rest)
}

fn trim_slashes(p: &[u8]) -> &[u8] {
    let start = p.iter().position(|&b| b != b'/').unwrap_or(p.len());
    &p[start..]
}

/// No NUL, no backslash, no `..` segment (the path is decoded already).
pub fn safe_path(path: &[u8]) -> bool {
    !path.contains(&0) && !path.contains(&b'\\') && !path.split(|&b| b == b'/').any(|s| s == b"..")
}

/// `Accept-Encoding` lists gzip (or x-gzip) with a non-zero quality.
pub fn accepts_gzip(value: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|item| {
        let mut parts = item.split(|&b| b == b';');
        let coding = parts.next().unwrap_or(b"").trim_ascii();
        if !coding.eq_ignore_ascii_case(b"gzip") && !coding.eq_ignore_ascii_case(b"x-gzip") {
            return false;
        }
        !parts.any(|p| {
            let p = p.trim_ascii();
            p.len() >= 2
                && p[..2].eq_ignore_ascii_case(b"q=")
                && p[2..].iter().all(|&c| c == b'0' || c == b'.')
        })
    })
}

/// `If-None-Match`: `*`, or a list holding `etag` (weak comparison, as for GET/HEAD).
pub fn etag_matches(header: &[u8], etag: &[u8]) -> bool {
    header.split(|&b| b == b',').any(|t| {
        let t = t.trim_ascii();
        t == b"*" || t.strip_prefix(b"W/").unwrap_or(t) == etag
    })
}

/// Without `If-Range` a range is honoured; with it, only if it is our ETag (strong) or our
/// exact `Last-Modified` date.
fn if_range_holds(if_range: Option<&[u8]>, etag: &str, last_modified: &str) -> bool {
    match if_range.map(<[u8]>::trim_ascii) {
        None => true,
        Some(v) => v == etag.as_bytes() || v == last_modified.as_bytes(),
    }
}

/// The answer to a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Send the whole file (no range, a malformed one, or several ranges).
    Whole,
    /// Send bytes `first..=last`.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parse one `bytes=` range against a file of `size` bytes.
pub fn parse_range(value: &[u8], size: u64) -> RangeAnswer {
    let Some(spec) = value.trim_ascii().strip_prefix(b"bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(&b',') {
        return RangeAnswer::Whole;
    }
    let spec = spec.trim_ascii();
    let Some(dash) = memchr::memchr(b'-', spec) else {
        return RangeAnswer::Whole;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    let num = |s: &[u8]| crate::request::parse_u64(s);
    if first.is_empty() {
        // Suffix: the last N bytes.
        return match num(last) {
            None => RangeAnswer::Whole,
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if size == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Part(size.saturating_sub(n), size - 1),
        };
    }
    let Some(a) = num(first) else {
        return RangeAnswer::Whole;
    };
    let b = if last.is_empty() {
        u64::MAX
    } else {
        match num(last) {
            Some(b) if b >= a => b,
            _ => return RangeAnswer::Whole,
        }
    };
    if a >= size {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Part(a, b.min(size - 1))
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31) (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for unix time `t`.
pub fn http_date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[m as usize - 1],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parse an IMF-fixdate into unix time; other date forms give `None` (the header is then
/// ignored, which only costs a full response).
pub fn parse_http_date(v: &[u8]) -> Option<i64> {
    let v = std::str::from_utf8(v).ok()?.trim();
    let (_, rest) = v.split_once(", ")?;
    let mut it = rest.split(' ');
    let day: u32 = it.next()?.parse().ok()?;
    let month = it.next()?;
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let year: i64 = it.next()?.parse().ok()?;
    let time = it.next()?;
    if it.next()? != "GMT" || it.next().is_some() {
        return None;
    }
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Read an `/etc/mime.types`-style file: `type ext ext ...` per line, `#` comments.
pub fn parse_mime_types(text: &[u8], into: &mut HashMap<String, String>) {
    for line in text.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_ascii_whitespace();
        let Some(ty) = words.next() else { continue };
        if !ty.contains('/') {
            continue;
        }
        for ext in words {
            into.insert(ext.to_ascii_lowercase(), ty.to_string());
        }
    }
}

/// The built-in table (used when no mime.types file has the extension).
fn builtin_mime() -> HashMap<String, String> {
    const TABLE: &[(&str, &str)] = &[
        ("html", "text/html"),
        ("htm", "text/html"),
        ("css", "text/css"),
        ("js", "text/javascript"),
        ("mjs", "text/javascript"),
        ("json", "application/json"),
        ("map", "application/json"),
        ("xml", "application/xml"),
        ("txt", "text/plain"),
        ("csv", "text/csv"),
        ("md", "text/markdown"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("avif", "image/avif"),
        ("svg", "image/svg+xml"),
        ("ico", "image/vnd.microsoft.icon"),
        ("bmp", "image/bmp"),
        ("woff", "font/woff"),
        ("woff2", "font/woff2"),
        ("ttf", "font/ttf"),
        ("otf", "font/otf"),
        ("eot", "application/vnd.ms-fontobject"),
        ("pdf", "application/pdf"),
        ("zip", "application/zip"),
        ("gz", "application/gzip"),
        ("tar", "application/x-tar"),
        ("wasm", "application/wasm"),
        ("mp3", "audio/mpeg"),
        ("ogg", "audio/ogg"),
        ("wav", "audio/wav"),
        ("mp4", "video/mp4"),
        ("webm", "video/webm"),
        ("webmanifest", "application/manifest+json"),
    ];
    TABLE
        .iter()
        .map(|(e, t)| (e.to_string(), t.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        assert!(safe_path(b"/static/a/b.css"));
        assert!(safe_path(b"/static/..a/b..c/..."));
        assert!(!safe_path(b"/static/../secret"));
        assert!(!safe_path(b"/static/a/.."));
        assert!(!safe_path(b".."));
        assert!(!safe_path(b"/static/..\\secret"));
        assert!(!safe_path(b"/static/a\\b"));
        assert!(!safe_path(b"/static/a\0.txt"));
    }

    #[test]
    fn prefixes_end_at_a_segment() {
        assert_eq!(
            rest_after(b"/static", b"/static/a.css"),
            Some(&b"/a.css"[..])
        );
        assert_eq!(rest_after(b"/static", b"/static"), Some(&b""[..]));
        assert_eq!(rest_after(b"/static", b"/static-private/x"), None);
        assert_eq!(rest_after(b"/static", b"/staticx"), None);
        assert_eq!(rest_after(b"", b"/anything"), Some(&b"/anything"[..]));
        assert_eq!(trim_slashes(b"//a/b"), b"a/b");
    }

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        assert_eq!(parse_range(b"bytes=0-9", 100), Part(0, 9));
        assert_eq!(parse_range(b"bytes=90-", 100), Part(90, 99));
        assert_eq!(parse_range(b"bytes=90-1000", 100), Part(90, 99));
        assert_eq!(parse_range(b"bytes=-10", 100), Part(90, 99));
        assert_eq!(parse_range(b"bytes=-1000", 100), Part(0, 99));
        assert_eq!(parse_range(b"bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-0", 0), Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range(b"bytes=5-1", 100), Whole);
        assert_eq!(parse_range(b"bytes=a-b", 100), Whole);
        assert_eq!(parse_range(b"items=0-1", 100), Whole);
        assert_eq!(parse_range(b"bytes=+1-2", 100), Whole);
    }

    #[test]
    fn conditionals() {
        let tag = b"\"1-2-3.4\"";
        assert!(etag_matches(b"\"1-2-3.4\"", tag));
        assert!(etag_matches(b"\"x\", W/\"1-2-3.4\"", tag));
        assert!(etag_matches(b"*", tag));
        assert!(!etag_matches(b"\"1-2-3.5\"", tag));
        assert!(if_range_holds(None, "\"e\"", "d"));
        assert!(if_range_holds(Some(b"\"e\""), "\"e\"", "d"));
        assert!(!if_range_holds(Some(b"W/\"e\""), "\"e\"", "d"));
        assert!(!if_range_holds(Some(b"x"), "\"e\"", "d"));
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        for t in [0, 784111777, 951_782_400, 1_800_000_000, 4_102_444_800] {
            assert_eq!(parse_http_date(http_date(t).as_bytes()), Some(t));
        }
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37"), None);
        assert_eq!(parse_http_date(b"garbage"), None);
    }

    #[test]
    fn gzip_acceptance() {
        assert!(accepts_gzip(b"gzip, deflate, br"));
        assert!(accepts_gzip(b"br;q=1.0, gzip;q=0.8"));
        assert!(accepts_gzip(b"x-gzip"));
        assert!(!accepts_gzip(b"gzip;q=0"));
        assert!(!accepts_gzip(b"br, deflate"));
        assert!(!accepts_gzip(b""));
    }

    /// A scratch tree: root/static (mapped), root/static-private, root/safe, with symlinks.
    fn scratch_tree(tag: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("ruwsgi-static-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["static/sub", "static-private", "safe"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("static/a.txt"), b"a").unwrap();
        std::fs::write(root.join("static/sub/index.html"), b"i").unwrap();
        std::fs::write(root.join("static-private/s.txt"), b"s").unwrap();
        std::fs::write(root.join("safe/ok.txt"), b"ok").unwrap();
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, root.join("static").join(name)).unwrap()
        };
        link("a.txt", "in");
        link(root.join("static/a.txt").to_str().unwrap(), "abs-in");
        link("../static-private/s.txt", "out");
        link(root.join("static-private").to_str().unwrap(), "dir-out");
        link("../safe/ok.txt", "safe-link");
        root
    }

    fn outcome(st: &StaticFiles, rel: &str) -> &'static str {
        let map = &st.maps[0];
        let Base::Dir { fd, path } = &map.base else {
            panic!("not a directory map")
        };
        match st.resolve_dir(fd, path, rel.as_bytes(), true) {
            Resolved::Found(_) => "found",
            Resolved::Missing => "missing",
            Resolved::Forbidden => "forbidden",
        }
    }

    #[test]
    fn resolution_stays_in_the_mapped_directory() {
        let root = scratch_tree("resolve");
        let mut settings = StaticSettings::default();
        settings.maps.push(ruwsgi_config::settings::StaticMap {
            mountpoint: "/static".into(),
            dir: root.join("static"),
            keep_mountpoint: false,
        });
        settings.index.push("index.html".into());
        let st = StaticFiles::new(&settings, 2).unwrap();
        assert_eq!(outcome(&st, "a.txt"), "found");
        assert_eq!(outcome(&st, "in"), "found");
        assert_eq!(outcome(&st, "abs-in"), "found");
        assert_eq!(outcome(&st, "sub"), "found");
        assert_eq!(outcome(&st, ""), "missing");
        assert_eq!(outcome(&st, "nope"), "missing");
        assert_eq!(outcome(&st, "a.txt/x"), "missing");
        assert_eq!(outcome(&st, "out"), "forbidden");
        assert_eq!(outcome(&st, "dir-out/s.txt"), "forbidden");
        assert_eq!(outcome(&st, "safe-link"), "forbidden");
        // Even if `..` got this far, the kernel (or the realpath check) keeps it inside.
        assert_eq!(outcome(&st, "../static-private/s.txt"), "forbidden");

        settings.safe.push(root.join("safe"));
        let st = StaticFiles::new(&settings, 2).unwrap();
        assert_eq!(outcome(&st, "safe-link"), "found");
        assert_eq!(outcome(&st, "out"), "forbidden");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn mime_files() {
        let mut m = builtin_mime();
        parse_mime_types(
            b"# comment\napplication/x-foo\tfoo FOO2\ntext/x-bar bar # trailing\nnoslash x\n",
            &mut m,
        );
        assert_eq!(m["foo"], "application/x-foo");
        assert_eq!(m["foo2"], "application/x-foo");
        assert_eq!(m["bar"], "text/x-bar");
        assert!(!m.contains_key("x"));
        assert_eq!(m["css"], "text/css");
    }
}
