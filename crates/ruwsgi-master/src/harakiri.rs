//! Harakiri: the master kills a process one of whose cores ran past its deadline.
//!
//! Workers write a deadline into their core's row when a request starts (`harakiri`), the
//! app may add its own (`set_user_harakiri`, in workers, mules and spoolers; spoolers also
//! get one per task with `spooler-harakiri`), and the master looks at
//! every row on each turn of its loop (at least once a second), so a process dies between
//! S and S+1 seconds after its request started. Before the kill the log gets who, which
//! request, for how long, and (the process's language plugin writes them) the stack of
//! every thread; `harakiri-verbose` adds the process's current system call and wait
//! channel. Then `SIGKILL` follows a short grace for the stacks, or, with
//! `harakiri-graceful-timeout`, `harakiri-graceful-signal` goes first and `SIGKILL` that
//! long after. The slot is respawned at once (not through the crash throttle).

use std::time::{Duration, Instant};

use nix::unistd::Pid;
use ruwsgi_shm::Due;
use ruwsgi_sys::log_line;
use ruwsgi_sys::signals::{kill_number, traceback_signal};

use crate::children::StopOrder;
use crate::master::{Deadline, Master};

/// Time the stacks get to reach the log before `SIGKILL`.
const STACKS_GRACE: Duration = Duration::from_millis(300);

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Master {
    /// Kill every process a core of which is past its deadline (once per process), and
    /// wake the loop up at the next deadline (a deadline set while the loop sleeps is at
    /// least a second away, and the loop wakes at least once a second).
    pub(crate) fn check_harakiri(&mut self, now: Instant) {
        let now_ms = unix_now_ms();
        let mut next_ms = u64::MAX;
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            let Some(pid) = slot.pid else { continue };
            if slot.harakiri {
                continue;
            }
            let cores = self.board_cores(slot);
            for row in cores {
                for d in [row.deadline_ms(), row.user_deadline_ms()] {
                    if d > now_ms {
                        next_ms = next_ms.min(d);
                    }
                }
            }
            let Some((core, due)) = cores
                .iter()
                .enumerate()
                .find_map(|(c, row)| row.due(now_ms).map(|d| (c, d)))
            else {
                continue;
            };
            let what = cores[core].what();
            self.harakiri(index, pid, core, due, &what, now_ms, now);
        }
        if next_ms == u64::MAX {
            self.timers.cancel(&Deadline::Harakiri);
        } else {
            let wait = Duration::from_millis(next_ms - now_ms);
            self.timers.set(Deadline::Harakiri, now + wait);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn harakiri(
        &mut self,
        index: usize,
        pid: Pid,
        core: usize,
        due: Due,
        what: &str,
        now_ms: u64,
        now: Instant,
    ) {
        let h = self.settings.processes.harakiri.clone();
        let graceful = !h.graceful_timeout.is_zero();
        let label = self.slots[index].label();
        // The stats' `harakiri_count` and the `ruwsgi_worker_harakiri_total` metric.
        if let Some(row) = self.board_row(&self.slots[index]) {
            row.count_harakiri();
        }
        log_line(&format!(
            "*** HARAKIRI ON {} (pid: {pid}, try: 1, graceful: {}) ***",
            label.to_uppercase(),
            if graceful { "yes" } else { "no" }
        ));
        log_line(&format!(
            "HARAKIRI{} triggered by {label} core {core} !!!",
            if due.user { " (user)" } else { "" }
        ));
        if !what.is_empty() && due.started_ms != 0 {
            log_line(&format!(
                "HARAKIRI: {label} core {core} (pid: {pid}) was serving \"{what}\" for {:.1} s",
                now_ms.saturating_sub(due.started_ms) as f64 / 1000.0
            ));
        }
        if h.verbose {
            for file in ["syscall", "wchan"] {
                let path = format!("/proc/{pid}/{file}");
                let text = std::fs::read_to_string(&path)
                    .map(|t| t.trim().to_string())
                    .unwrap_or_else(|e| format!("unreadable ({e})"));
                log_line(&format!("HARAKIRI: {path}: {text}"));
            }
        }
        if kill_number(pid, traceback_signal()).is_ok() {
            log_line(&format!(
                "HARAKIRI: the stack of every thread of {label} (pid: {pid}) follows, if its plugin writes them"
            ));
        }
        let deadline = if graceful {
            if let Err(e) = kill_number(pid, h.graceful_signal) {
                log_line(&format!(
                    "HARAKIRI: cannot send signal {} to {label} (pid: {pid}): {e}",
                    h.graceful_signal
                ));
            }
            now + h.graceful_timeout
        } else {
            now + STACKS_GRACE
        };
        let slot = &mut self.slots[index];
        slot.harakiri = true;
        let deadline = slot
            .stop
            .map_or(deadline, |order| order.deadline.min(deadline));
        slot.stop = Some(StopOrder { deadline });
        self.timers.set(Deadline::Kill(index), deadline);
    }
}
