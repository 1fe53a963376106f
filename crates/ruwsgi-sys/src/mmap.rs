//! [`SharedRegion`]: zeroed memory that every forked child shares with its creator.
//!
//! The master maps the region before the first fork; children inherit the mapping
//! (`MAP_SHARED|MAP_ANONYMOUS`), so a store in one process is seen by all. Only the creating
//! process unmaps it on drop: a child never runs destructors of the parent's state (it
//! leaves with `_exit`), and when it does drop a handle its mapping simply lives until exit.
//! A heap-backed variant with the same shape serves unit tests (and miri).
//!
//! The bytes are zero when a constructor returns, and safe code can only change them through
//! a typed view that takes the region over (`ruwsgi_shm::Region`); unsafe code writing
//! through [`SharedRegion::as_ptr`] must leave them valid for whatever view comes later.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};

/// Alignment of heap-backed regions (a cache line; mappings are page-aligned anyway).
const HEAP_ALIGN: usize = 128;

/// Alignment every mapping has (the smallest page size Linux uses).
const MAP_ALIGN: usize = 4096;

/// A zero-initialised, writable memory region, page-aligned when mapped and at least
/// 128-byte aligned on the heap. It exposes only a pointer: typed access is the job of
/// `ruwsgi_shm::Region`, whose content types stay sound while other processes write
/// concurrently (atomics, process-shared locks).
#[derive(Debug)]
pub struct SharedRegion {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
}

#[derive(Debug)]
enum Backing {
    /// `mmap`ed by process `creator`; only that process unmaps it.
    Mapped { creator: nix::unistd::Pid },
    /// `alloc_zeroed` with this layout (not shared across fork).
    Heap(Layout),
}

// SAFETY: the region is plain memory with no thread affinity; the pointer is only handed out
// raw, and whoever builds references over it must use types that are Sync (`ShmSafe`).
unsafe impl Send for SharedRegion {}
// SAFETY: as above; `&SharedRegion` only gives out the raw pointer and the length.
unsafe impl Sync for SharedRegion {}

/// Map `len` bytes (rounded up by the kernel to pages) of zeroed `MAP_SHARED|MAP_ANONYMOUS`
/// memory. Children forked afterwards share it with this process.
pub fn mmap_shared_anon(len: usize) -> io::Result<SharedRegion> {
    let size =
        NonZeroUsize::new(len).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: an anonymous mapping at an address chosen by the kernel aliases no existing
    // Rust object; it is zero-filled by the kernel.
    let ptr = unsafe {
        mmap_anonymous(
            None,
            size,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }?;
    Ok(SharedRegion {
        ptr: ptr.cast(),
        len,
        backing: Backing::Mapped {
            creator: nix::unistd::getpid(),
        },
    })
}

impl SharedRegion {
    /// A zeroed heap region of `len` bytes with the same alignment guarantees (for tests;
    /// not shared with forked children).
    pub fn on_heap(len: usize) -> SharedRegion {
        let layout =
            Layout::from_size_align(len.max(1), HEAP_ALIGN).expect("region size overflows");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        SharedRegion {
            ptr,
            len,
            backing: Backing::Heap(layout),
        }
    }

    /// Start of the region.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Length in bytes as requested.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length region (never produced by the constructors).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the region is shared with forked children (mapped, not heap).
    pub fn is_shared(&self) -> bool {
        matches!(self.backing, Backing::Mapped { .. })
    }

    /// The alignment the constructor guarantees for the start of the region: 4096 for a
    /// mapping, 128 on the heap. Typed views check their types against this guarantee, not
    /// against the address they happen to get, so a layout is accepted or refused the same
    /// way on every run.
    pub fn align(&self) -> usize {
        match self.backing {
            Backing::Mapped { .. } => MAP_ALIGN,
            Backing::Heap(_) => HEAP_ALIGN,
        }
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        if crate::lock::any_held() {
            // A robust mutex held by a thread of this process may live in this memory, and
            // glibc's list of held robust mutexes runs through it: keep the memory (see
            // `crate::lock`). Holding a lock while dropping a region is rare and, when it
            // happens, a leak is the only sound outcome.
            return;
        }
        match self.backing {
            Backing::Mapped { creator } => {
                if nix::unistd::getpid() == creator {
                    // SAFETY: the pointer and length come from our own successful mmap, and
                    // this value is being dropped, so no reference derived from it through
                    // this owner remains.
                    let _ = unsafe { munmap(self.ptr.cast(), self.len) };
                }
            }
            Backing::Heap(layout) => {
                // SAFETY: allocated in `on_heap` with exactly this layout, freed once here.
                unsafe { dealloc(self.ptr.as_ptr(), layout) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_region_is_zeroed_and_aligned() {
        let r = SharedRegion::on_heap(1000);
        assert_eq!(r.len(), 1000);
        assert_eq!(r.as_ptr().as_ptr() as usize % HEAP_ALIGN, 0);
        assert_eq!(r.align(), HEAP_ALIGN);
        assert!(!r.is_shared());
    }

    #[test]
    fn mapped_region_is_page_aligned() {
        let r = mmap_shared_anon(4096 * 2).unwrap();
        assert!(r.is_shared());
        assert_eq!(r.as_ptr().as_ptr() as usize % MAP_ALIGN, 0);
        assert_eq!(r.align(), MAP_ALIGN);
    }
}
