//! Regions on the heap, across a real fork, and the layouts they refuse.

use std::mem::{align_of, size_of};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};

use ruwsgi_sys::{ForkResult, SharedRegion};

use super::*;
use ruwsgi_sys::testing::{fork_lock, wait_exit, LONG};

struct Head {
    generation: AtomicU64,
    flags: [AtomicU32; 3],
}
crate::impl_shm!(ShmSafe for Head { generation, flags });

#[repr(align(256))]
struct Wide {
    word: AtomicU64,
}
crate::impl_shm!(ShmSafe for Wide { word });

#[test]
fn heap_region_lays_out_a_header_and_items() {
    let region = Region::<Head, AtomicU64>::on_heap(5).unwrap();
    assert_eq!(
        (region.len(), region.is_empty(), region.is_shared()),
        (5, false, false)
    );
    assert_eq!(region.items().len(), 5);
    assert!(region.items().iter().all(|a| a.load(Relaxed) == 0));
    region.header().generation.store(3, Relaxed);
    region.header().flags[2].store(9, Relaxed);
    region.items()[4].store(44, Relaxed);
    assert_eq!(region.header().generation.load(Relaxed), 3);
    assert_eq!(region.items()[4].load(Relaxed), 44);
    // The items start right after the header, which is 8-byte aligned and 24 bytes long.
    let head = std::ptr::from_ref(region.header()).addr();
    let first = std::ptr::from_ref(&region.items()[0]).addr();
    assert_eq!(first - head, size_of::<Head>());
    assert_eq!(Region::<Head, AtomicU64>::size_for(5).unwrap(), 24 + 5 * 8);
}

#[test]
fn single_value_and_empty_regions() {
    let one = Region::<AtomicU64>::on_heap(0).unwrap();
    one.header().store(1, Relaxed);
    assert!(one.is_empty() && one.items().is_empty());
    let nothing = Region::<()>::map(0).unwrap();
    assert_eq!(nothing.header(), &());
}

#[test]
fn too_small_memory_is_refused() {
    let err = Region::<Head, AtomicU64>::over(SharedRegion::on_heap(40), 4).unwrap_err();
    assert!(
        matches!(err, RegionError::TooSmall { need: 56, have: 40 }),
        "{err}"
    );
    Region::<Head, AtomicU64>::over(SharedRegion::on_heap(56), 4).unwrap();
}

#[test]
fn alignment_beyond_the_memory_guarantee_is_refused() {
    assert_eq!(align_of::<Wide>(), 256);
    // The heap guarantees 128 bytes, whatever address this run happens to get.
    let err = Region::<Wide>::on_heap(0).unwrap_err();
    assert!(
        matches!(
            err,
            RegionError::Misaligned {
                need: 256,
                have: 128
            }
        ),
        "{err}"
    );
    let err = Region::<AtomicU64, Wide>::on_heap(2).unwrap_err();
    assert!(matches!(err, RegionError::Misaligned { .. }), "{err}");
    // A mapping is page-aligned.
    let mapped = Region::<AtomicU64, Wide>::map(2).unwrap();
    assert_eq!(std::ptr::from_ref(&mapped.items()[1]).addr() % 256, 0);
}

#[test]
fn overflowing_layouts_are_refused() {
    let err = Region::<Head, AtomicU64>::on_heap(usize::MAX / 4).unwrap_err();
    assert!(matches!(err, RegionError::Overflow { .. }), "{err}");
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
#[allow(unsafe_code)] // fork
fn a_mapped_region_is_shared_with_a_forked_child() {
    let _forks = fork_lock();
    let region = Region::<Head, AtomicU64>::map(3).unwrap();
    assert!(region.is_shared());
    region.header().generation.store(1, Relaxed);
    // SAFETY: the child only performs atomic operations on the shared mapping and `_exit`s;
    // it allocates nothing and takes no lock another test thread could hold.
    match unsafe { ruwsgi_sys::fork() }.unwrap() {
        ForkResult::Child => {
            let seen = region.header().generation.load(Relaxed);
            region.header().generation.store(seen + 1, Relaxed);
            region.header().flags[1].store(7, Relaxed);
            region.items()[2].store(42, Relaxed);
            ruwsgi_sys::process::exit_now(0);
        }
        ForkResult::Parent { child } => {
            let status = wait_exit(child, LONG);
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            assert_eq!(region.header().generation.load(Relaxed), 2);
            assert_eq!(region.header().flags[1].load(Relaxed), 7);
            assert_eq!(region.items()[2].load(Relaxed), 42);
            assert_eq!(region.items()[0].load(Relaxed), 0);
        }
    }
}
