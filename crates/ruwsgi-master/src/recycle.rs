//! Recycling the master decides: `max-worker-lifetime` (a graceful replacement, like a
//! worker reaching `max-requests`) and `evil-reload-on-rss`/`-as` (`SIGKILL`, for a worker
//! too busy or too stuck to check its own memory; it is respawned at once). Both are
//! looked at on each turn of the loop (at least once a second), and only when set.

use std::time::Instant;

use nix::sys::signal::Signal;
use ruwsgi_sys::log_line;

use crate::children::{ChildKind, StopOrder};
use crate::master::Master;

impl Master {
    pub(crate) fn check_recycling(&mut self, now: Instant) {
        let r = self.settings.processes.recycle.clone();
        if r.max_lifetime.is_zero() && r.evil_rss == 0 && r.evil_address_space == 0 {
            return;
        }
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            let (ChildKind::Worker, Some(pid), None) = (slot.kind, slot.pid, slot.stop) else {
                continue;
            };
            if slot.harakiri {
                continue;
            }
            if !r.max_lifetime.is_zero() {
                let limit = r.max_lifetime + r.max_lifetime_delta * slot.id.saturating_sub(1);
                let lived = slot.spawned_at.map_or(std::time::Duration::ZERO, |t| {
                    now.saturating_duration_since(t)
                });
                if lived >= limit {
                    let why = format!("lived {}s (max-worker-lifetime)", lived.as_secs());
                    self.replace_because(index, &why);
                    continue;
                }
            }
            if r.evil_rss == 0 && r.evil_address_space == 0 {
                continue;
            }
            let Ok((rss, vsz)) = ruwsgi_sys::process::memory(Some(pid)) else {
                continue;
            };
            let over = |limit: u64, value: u64| limit != 0 && value > limit;
            let what = if over(r.evil_rss, rss) {
                format!(
                    "evil-reload-on-rss: {} MB > {} MB",
                    rss >> 20,
                    r.evil_rss >> 20
                )
            } else if over(r.evil_address_space, vsz) {
                format!(
                    "evil-reload-on-as: {} MB > {} MB",
                    vsz >> 20,
                    r.evil_address_space >> 20
                )
            } else {
                continue;
            };
            log_line(&format!(
                "{} (pid: {pid}) uses too much memory ({what}): SIGKILL",
                slot.label()
            ));
            let _ = ruwsgi_sys::signals::kill(pid, Signal::SIGKILL);
            // A recycle: respawned at once when reaped, and not looked at again meanwhile.
            let slot = &mut self.slots[index];
            slot.recycle = true;
            slot.stop = Some(StopOrder { deadline: now });
        }
    }
}
