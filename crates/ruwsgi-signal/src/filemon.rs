//! [`FileMonitors`]: inotify watches that make the master route a signal when a file or a
//! directory changes (`add_file_monitor`).
//!
//! The master polls [`FileMonitors::fd`] with its other descriptors and calls
//! [`FileMonitors::read`] when it is readable: every watch with events in that batch gives
//! its signals once, however many events it had.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// The events watched: attributes, creation, deletion, writes and moves.
fn watched_events() -> AddWatchFlags {
    AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
}

/// One inotify instance and the signals of its watches.
#[derive(Debug)]
pub struct FileMonitors {
    inotify: Inotify,
    /// Signals per watch, in the order they were added; the kernel gives the same watch for
    /// a path added twice.
    signals: HashMap<WatchDescriptor, Vec<u8>>,
}

impl FileMonitors {
    /// A non-blocking, close-on-exec inotify instance with no watches.
    pub fn new() -> io::Result<FileMonitors> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        Ok(FileMonitors {
            inotify,
            signals: HashMap::new(),
        })
    }

    /// Route `signum` when `path` (a file, or a directory and its entries) changes.
    pub fn add(&mut self, path: &Path, signum: u8) -> io::Result<()> {
        let wd = self.inotify.add_watch(path, watched_events())?;
        let signals = self.signals.entry(wd).or_default();
        if !signals.contains(&signum) {
            signals.push(signum);
        }
        Ok(())
    }

    /// Number of distinct watches.
    pub fn len(&self) -> usize {
        self.signals.len()
    }

    /// True when nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.signals.is_empty()
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Drain the pending events: the signals to route, each watch's once, in the order its
    /// first event came, and no signal twice. Empty when nothing is pending.
    pub fn read(&self) -> io::Result<Vec<u8>> {
        let mut watches: Vec<WatchDescriptor> = Vec::new();
        loop {
            match self.inotify.read_events() {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    for e in events {
                        if !watches.contains(&e.wd) {
                            watches.push(e.wd);
                        }
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let mut out = Vec::new();
        for wd in watches {
            for &s in self.signals.get(&wd).into_iter().flatten() {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "ruwsgi-signal-{tag}-{}-{:?}",
                std::process::id(),
                Instant::now()
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn wait_readable(m: &FileMonitors) -> bool {
        let mut fds = [PollFd::new(m.fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(5000u16)).unwrap() > 0
    }

    #[test]
    fn changes_raise_each_watchs_signals_once() {
        let d = TempDir::new("filemon");
        let file = d.0.join("watched");
        std::fs::write(&file, b"a").unwrap();
        let mut m = FileMonitors::new().unwrap();
        m.add(&d.0, 3).unwrap();
        m.add(&file, 4).unwrap();
        m.add(&file, 5).unwrap();
        m.add(&file, 4).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.read().unwrap(), Vec::<u8>::new());

        // Several events on the file: its signals once each.
        std::fs::write(&file, b"b").unwrap();
        std::fs::write(&file, b"c").unwrap();
        assert!(wait_readable(&m));
        let mut got = m.read().unwrap();
        got.sort();
        assert_eq!(
            got,
            [3, 4, 5],
            "the directory sees the write to its entry too"
        );
        assert_eq!(m.read().unwrap(), Vec::<u8>::new());

        // A new entry in the directory: only the directory's signal.
        std::fs::write(d.0.join("other"), b"x").unwrap();
        assert!(wait_readable(&m));
        assert_eq!(m.read().unwrap(), [3]);
    }

    #[test]
    fn missing_paths_are_errors() {
        let mut m = FileMonitors::new().unwrap();
        let e = m.add(Path::new("/nonexistent/ruwsgi/path"), 1).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(m.is_empty());
        let start = Instant::now();
        assert_eq!(m.read().unwrap(), Vec::<u8>::new());
        assert!(start.elapsed() < Duration::from_secs(1), "never blocks");
    }
}
