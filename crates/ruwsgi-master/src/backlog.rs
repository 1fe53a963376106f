//! The listen queue: once a second the master looks at each TCP socket's accept queue
//! (`TCP_INFO`) and logs when it is full, as uWSGI does: connections beyond it are refused
//! or left waiting by the kernel, so the operator needs to know (more workers, a larger
//! `listen`, slower clients to find).

use std::time::{Duration, Instant};

use ruwsgi_sys::log_line;

use crate::master::Master;

const EVERY: Duration = Duration::from_secs(1);

impl Master {
    pub(crate) fn check_listen_queues(&mut self, now: Instant) {
        if self
            .queues_checked
            .is_some_and(|t| now.saturating_duration_since(t) < EVERY)
        {
            return;
        }
        self.queues_checked = Some(now);
        let mut full = Vec::new();
        for b in self.sockets.iter().filter(|b| !b.is_unix) {
            let Ok((waiting, backlog)) =
                ruwsgi_sys::socket::listen_queue(std::os::fd::AsFd::as_fd(&b.fd))
            else {
                continue;
            };
            if backlog > 0 && waiting >= backlog {
                let line = format!(
                    "*** listen queue of socket \"{}\" (fd: {}) full !!! ({waiting}/{backlog}) ***",
                    b.name,
                    std::os::fd::AsRawFd::as_raw_fd(&b.fd)
                );
                log_line(&line);
                full.push(line);
            }
        }
        for line in full {
            self.alarm_backlog(&line);
        }
    }
}
