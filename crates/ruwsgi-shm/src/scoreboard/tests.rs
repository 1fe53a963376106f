//! Scoreboard counters on the heap, and one fork across a real shared mapping.

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
}

#[test]
#[allow(unsafe_code)] // fork
fn a_forked_child_updates_the_parent_view() {
    let _forks = crate::testing::fork_lock();
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
            let status = crate::testing::wait_exit(child, crate::testing::LONG);
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            assert_eq!(sb.worker(2).pid(), 4242);
            assert_eq!(sb.worker(2).requests(), 1);
            assert_eq!(sb.worker(2).tx(), 20);
            assert_eq!(sb.total_requests(), 1);
        }
    }
}
