//! Scoreboard counters and app tables on the heap, and forks across a real shared mapping.

use std::sync::atomic::Ordering::Relaxed;

use super::*;

#[test]
fn lifecycle_of_a_slot() {
    let sb = Scoreboard::on_heap(2);
    assert_eq!(sb.workers(), 2);
    let w = sb.worker(1);
    assert_eq!(w.status(), WorkerStatus::Dead);
    w.spawned(100, 1_000);
    assert_eq!(
        (w.pid(), w.respawn_count(), w.last_spawn()),
        (100, 0, 1_000)
    );
    assert_eq!(w.status(), WorkerStatus::Idle);
    w.request_started(5);
    assert_eq!(w.status(), WorkerStatus::Busy);
    assert_eq!(w.request_start_us(), 5);
    w.request_finished(100, 10, false);
    w.request_started(6);
    w.request_finished(300, 5, true);
    assert_eq!(
        (w.requests(), w.delta_requests(), w.exceptions()),
        (2, 2, 1)
    );
    assert_eq!((w.running_time_us(), w.tx(), w.avg_rt_us()), (400, 15, 200));
    assert_eq!(w.request_start_us(), 0);
    assert_eq!(sb.total_requests(), 2);
    w.exited();
    assert_eq!((w.pid(), w.status()), (0, WorkerStatus::Dead));
    w.spawned(101, 2_000);
    assert_eq!(
        (w.respawn_count(), w.delta_requests(), w.requests()),
        (1, 0, 2)
    );
    sb.worker(2).spawned(200, 3);
    sb.worker(2).request_finished(1, 1, false);
    assert_eq!(sb.total_requests(), 3);
    let snap = sb.snapshot();
    assert_eq!(snap.len(), 2);
    assert_eq!(
        (snap[0].id, snap[0].pid, snap[0].status),
        (1, 101, WorkerStatus::Idle)
    );
    assert_eq!(
        (snap[0].status.as_str(), snap[0].status.to_string()),
        ("idle", "idle".into())
    );
    assert_eq!(WorkerSnapshot::default().status, WorkerStatus::Dead);
    assert_eq!((snap[1].id, snap[1].requests), (2, 1));
}

#[test]
fn header_and_bounds() {
    let sb = Scoreboard::on_heap(3);
    sb.set_master_pid(42);
    sb.set_generation(7);
    assert_eq!((sb.master_pid(), sb.generation()), (42, 7));
    assert!(sb.get(0).is_none());
    assert!(sb.get(4).is_none());
    assert!(sb.get(3).is_some());
    sb.worker(3).set_accepting(true);
    assert!(sb.worker(3).accepting());
    assert!(!sb.worker(2).accepting());
}

#[test]
fn slots_do_not_share_cache_lines() {
    assert_eq!(std::mem::size_of::<WorkerSlot>() % 128, 0);
    assert_eq!(
        std::mem::size_of::<Header>() % std::mem::align_of::<WorkerSlot>(),
        0
    );
    // The per-request counters keep the first line; the app table starts on the next.
    assert_eq!(std::mem::offset_of!(WorkerSlot, apps), 128);
}

fn app(mountpoint: &[u8], callable: usize) -> AppInfo<'_> {
    AppInfo {
        mountpoint,
        startup_time: 2,
        interpreter: 0xfeed,
        callable,
    }
}

#[test]
fn apps_are_published_counted_and_read() {
    let sb = Scoreboard::on_heap(2);
    let w = sb.worker(1);
    assert!(w.apps().is_empty());
    assert!(sb.snapshot()[0].apps.is_empty());
    assert_eq!(w.publish_apps(&[app(b"", 10), app(b"/other/", 20)]), 2);
    for _ in 0..3 {
        w.count_app_request(0, Writers::One);
    }
    w.count_app_exception(0, Writers::One);
    w.count_app_request(1, Writers::Several);
    w.count_app_exception(1, Writers::Several);
    // Past the table: ignored, not a panic.
    w.count_app_request(MAX_APPS, Writers::One);
    w.count_app_exception(usize::MAX, Writers::Several);
    let expected = vec![
        AppSnapshot {
            id: 0,
            mountpoint: Vec::new(),
            startup_time: 2,
            interpreter: 0xfeed,
            callable: 10,
            requests: 3,
            exceptions: 1,
        },
        AppSnapshot {
            id: 1,
            mountpoint: b"/other/".to_vec(),
            startup_time: 2,
            interpreter: 0xfeed,
            callable: 20,
            requests: 1,
            exceptions: 1,
        },
    ];
    assert_eq!(w.apps(), expected);
    let snap = sb.snapshot();
    assert_eq!(snap[0].apps, expected);
    assert!(snap[1].apps.is_empty(), "worker 2 published nothing");

    // A republish replaces the list and zeroes the counters.
    assert_eq!(w.publish_apps(&[app(b"/x", 30)]), 1);
    let apps = w.apps();
    assert_eq!(apps.len(), 1);
    assert_eq!(
        (apps[0].callable, apps[0].requests, apps[0].exceptions),
        (30, 0, 0)
    );

    // A new process in the slot shows no apps until it publishes its own.
    w.spawned(7, 1);
    assert!(w.apps().is_empty());
}

#[test]
fn app_tables_have_bounds() {
    let sb = Scoreboard::on_heap(1);
    let w = sb.worker(1);
    let long = vec![b'm'; MAX_MOUNTPOINT + 10];
    let names: Vec<Vec<u8>> = (0..MAX_APPS + 3)
        .map(|i| format!("/{i}").into_bytes())
        .collect();
    let mut apps: Vec<AppInfo<'_>> = names.iter().map(|n| app(n, 1)).collect();
    apps[0].mountpoint = &long;
    assert_eq!(w.publish_apps(&apps), MAX_APPS);
    let read = w.apps();
    assert_eq!(read.len(), MAX_APPS);
    assert_eq!(read[0].mountpoint, &long[..MAX_MOUNTPOINT]);
    assert_eq!(
        read[MAX_APPS - 1].mountpoint,
        format!("/{}", MAX_APPS - 1).as_bytes()
    );
    assert_eq!(read[MAX_APPS - 1].id, MAX_APPS - 1);
    assert_eq!(w.publish_apps(&[]), 0);
    assert!(w.apps().is_empty());
}

/// Several cores bumping through `Writers::Several` lose no count.
#[test]
fn several_writers_lose_no_count() {
    let sb = Scoreboard::on_heap(1);
    sb.worker(1).publish_apps(&[app(b"", 1)]);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10_000 {
                    sb.worker(1).count_app_request(0, Writers::Several);
                }
            });
        }
    });
    assert_eq!(sb.worker(1).apps()[0].requests, 40_000);
}

/// A reader overlapping republishes never mixes two lists: each list's mountpoints and
/// callables agree.
#[test]
fn a_read_never_mixes_two_publishes() {
    let sb = Scoreboard::on_heap(1);
    let w = sb.worker(1);
    let first = [app(b"/first/a", 1), app(b"/first/b", 1)];
    let second = [app(b"/second", 2)];
    w.publish_apps(&first);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let published = std::sync::atomic::AtomicUsize::new(0);
    /// Stops the writer however the reader's loop ends (a failed assertion included), so
    /// the scope can join it.
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Relaxed);
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut turn = 0usize;
            while !stop.load(Relaxed) {
                w.publish_apps(if turn % 2 == 0 { &second } else { &first });
                turn += 1;
                published.store(turn, Relaxed);
            }
        });
        let _stop = StopOnDrop(&stop);
        let deadline = std::time::Instant::now() + ruwsgi_sys::testing::LONG;
        // Read for as long as the writer takes to publish 50,000 times.
        while published.load(Relaxed) < 50_000 && std::time::Instant::now() < deadline {
            let apps = w.apps();
            match apps.len() {
                // Every try overlapped a publish: allowed, never a mix.
                0 => {}
                1 => assert_eq!(
                    (apps[0].mountpoint.as_slice(), apps[0].callable),
                    (&b"/second"[..], 2)
                ),
                2 => {
                    for a in &apps {
                        assert!(
                            a.mountpoint.starts_with(b"/first/") && a.callable == 1,
                            "{apps:?}"
                        );
                    }
                }
                n => panic!("{n} apps: {apps:?}"),
            }
        }
    });
}

#[test]
#[allow(unsafe_code)] // fork
fn a_forked_child_publishes_apps_the_parent_reads() {
    let _forks = ruwsgi_sys::testing::fork_lock();
    let sb = Scoreboard::new(2).unwrap();
    // SAFETY: the child only performs atomic loads and stores into the shared mapping
    // (publishing reads the borrowed app list, allocates nothing) and `_exit`s; it takes no
    // lock, so other test threads cannot wedge it.
    match unsafe { ruwsgi_sys::fork() }.unwrap() {
        ruwsgi_sys::ForkResult::Child => {
            let slot = sb.worker(2);
            slot.spawned(4243, 9);
            slot.publish_apps(&[app(b"", 0xa0), app(b"/child/", 0xb0)]);
            slot.count_app_request(1, Writers::One);
            slot.count_app_request(1, Writers::Several);
            slot.count_app_exception(1, Writers::One);
            slot.count_app_request(0, Writers::One);
            ruwsgi_sys::process::exit_now(0);
        }
        ruwsgi_sys::ForkResult::Parent { child } => {
            let status = ruwsgi_sys::testing::wait_exit(child, ruwsgi_sys::testing::LONG);
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            let snap = sb.snapshot();
            assert!(snap[0].apps.is_empty());
            let apps = &snap[1].apps;
            let seen: Vec<_> = apps
                .iter()
                .map(|a| {
                    (
                        a.id,
                        a.mountpoint.as_slice(),
                        a.callable,
                        a.requests,
                        a.exceptions,
                    )
                })
                .collect();
            assert_eq!(
                seen,
                [(0, &b""[..], 0xa0, 1, 0), (1, &b"/child/"[..], 0xb0, 2, 1)]
            );
            assert_eq!(apps[1].interpreter, 0xfeed);
        }
    }
}

#[test]
#[allow(unsafe_code)] // fork
fn a_forked_child_updates_the_parent_view() {
    let _forks = ruwsgi_sys::testing::fork_lock();
    let sb = Scoreboard::new(2).unwrap();
    // SAFETY: the child only performs atomic stores into the shared mapping and `_exit`s;
    // it takes no lock and allocates nothing, so other test threads cannot wedge it.
    match unsafe { ruwsgi_sys::fork() }.unwrap() {
        ruwsgi_sys::ForkResult::Child => {
            let slot = sb.worker(2);
            slot.spawned(4242, 9);
            slot.request_started(1);
            slot.request_finished(10, 20, false);
            ruwsgi_sys::process::exit_now(0);
        }
        ruwsgi_sys::ForkResult::Parent { child } => {
            let status = ruwsgi_sys::testing::wait_exit(child, ruwsgi_sys::testing::LONG);
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            assert_eq!(sb.worker(2).pid(), 4242);
            assert_eq!(sb.worker(2).requests(), 1);
            assert_eq!(sb.worker(2).tx(), 20);
            assert_eq!(sb.total_requests(), 1);
        }
    }
}

#[test]
fn latency_buckets_count_each_request_once_at_its_bound() {
    let board = Scoreboard::on_heap(1);
    let w = board.worker(1);
    for us in [0, 100, 101, 999_999, 10_000_000, 10_000_001, u64::MAX] {
        w.request_started(1);
        w.request_finished(us, 0, false);
    }
    let b = w.latency_buckets();
    assert_eq!(b.iter().sum::<u64>(), 7);
    assert_eq!(b[0], 2, "0 and 100 µs are <= 100 µs");
    assert_eq!(b[1], 1, "101 µs");
    assert_eq!(b[LATENCY_BOUNDS_US.len() - 4], 1, "999_999 µs is <= 1 s");
    assert_eq!(b[LATENCY_BOUNDS_US.len() - 1], 1, "10 s");
    assert_eq!(b[LATENCY_BUCKETS - 1], 2, "slower than every bound");
}

#[test]
fn harakiri_count_and_memory() {
    let board = Scoreboard::on_heap(1);
    let w = board.worker(1);
    w.spawned(10, 1);
    w.set_memory(4096, 8192);
    w.exited();
    assert_eq!((w.rss(), w.vsz()), (0, 0), "a dead worker uses no memory");
    w.count_harakiri();
    assert_eq!(w.harakiri_count(), 1);
    assert_eq!(w.snapshot(1).harakiri_count, 1);
}
