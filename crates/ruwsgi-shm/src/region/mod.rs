//! Typed views over shared memory: [`Region`] and the traits that make them sound.
//!
//! A [`Region<H, S>`] owns a [`SharedRegion`] and lays one header `H` followed by `len`
//! items `S` over it, handing out `&H` and `&[S]` that borrow the region. This module holds
//! the only code in the workspace that turns region memory into references; everything built
//! on it (scoreboard, cache, locks, signal and RPC tables) is safe Rust.
//!
//! The design decision: what may live in a region is decided by the type, not by the call
//! site. [`ShmSafe`] marks types whose zeroed bytes are a valid value and that stay sound
//! while other processes use them through `&self` (atomics, process-shared locks); the
//! [`impl_shm!`](crate::impl_shm) macro implements it for a struct only after checking, at
//! compile time, every field. [`ShmPlain`] marks plain data (any bit pattern valid) that may
//! sit behind a process-shared lock ([`ShmMutex`](crate::ShmMutex)).

use std::alloc::Layout;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{
    AtomicBool, AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32,
    AtomicU64, AtomicU8, AtomicUsize,
};

use ruwsgi_sys::SharedRegion;

/// A type that may be placed in memory shared by forked processes and used there through
/// shared references only.
///
/// Implement it for a struct with [`impl_shm!`](crate::impl_shm), which checks the rules
/// below field by field; a hand-written implementation needs `#[allow(unsafe_code)]` and a
/// reason (STYLE R6).
///
/// # Safety
///
/// An implementor guarantees that:
/// 1. a value whose bytes are all zero is valid (the state of a fresh region);
/// 2. every change goes through `&self` with interior mutability that stays sound when other
///    *processes* run the same code at the same time: atomics, or a process-shared lock with
///    the data it guards; never a field that must not change under a shared reference;
/// 3. it holds nothing one process could follow into another's private memory (no
///    references, boxes, raw or function pointers), and it has no drop glue: a region never
///    runs destructors;
/// 4. it is `Sync` (the supertrait checks this part).
#[allow(unsafe_code)] // declaring the contract; implementations carry their own allow
pub unsafe trait ShmSafe: Sync + Sized {}

/// Plain data that may live in shared memory behind a process-shared lock
/// ([`ShmMutex`](crate::ShmMutex)): integers, floats, arrays and structs of them.
///
/// # Safety
///
/// An implementor guarantees that every bit pattern of its size is a valid value (so zeroed
/// memory, and a write cut short by a killed process, are both valid), that it holds no
/// pointers or references, and that it has no drop glue.
#[allow(unsafe_code)] // declaring the contract; implementations carry their own allow
pub unsafe trait ShmPlain: Send + Sized {}

/// Implement [`ShmSafe`] or [`ShmPlain`] for a struct after checking it at compile time: the
/// field list must name every field (it is matched by an exhaustive pattern), each field's
/// type must implement the same trait, and the struct must have no `Drop`. Invoke it next to
/// the struct (it reads private fields); generic and tuple structs are not supported.
///
/// ```
/// use std::sync::atomic::AtomicU64;
/// use ruwsgi_shm::{impl_shm, Region, ShmMutex};
///
/// struct Counters {
///     hits: AtomicU64,
///     misses: [AtomicU64; 4],
///     totals: ShmMutex<[u64; 2]>,
/// }
/// impl_shm!(ShmSafe for Counters { hits, misses, totals });
///
/// let region = Region::<Counters>::on_heap(0).unwrap();
/// region.header().totals.init().unwrap();
/// ```
///
/// A plain `u64` is not [`ShmSafe`] (it could not change under a shared reference):
///
/// ```compile_fail
/// use std::sync::atomic::AtomicU64;
/// struct Bad { hits: AtomicU64, plain: u64 }
/// ruwsgi_shm::impl_shm!(ShmSafe for Bad { hits, plain });
/// ```
///
/// Nor may a field be left out of the list:
///
/// ```compile_fail
/// use std::sync::atomic::AtomicU64;
/// struct Bad { hits: AtomicU64, misses: AtomicU64 }
/// ruwsgi_shm::impl_shm!(ShmSafe for Bad { hits });
/// ```
#[macro_export]
macro_rules! impl_shm {
    (ShmSafe for $name:ident { $($field:ident),* $(,)? }) => {
        $crate::impl_shm!(@checked ShmSafe, $name { $($field),* });
    };
    (ShmPlain for $name:ident { $($field:ident),* $(,)? }) => {
        $crate::impl_shm!(@checked ShmPlain, $name { $($field),* });
    };
    (@checked $trait:ident, $name:ident { $($field:ident),* }) => {
        const _: () = {
            #[allow(dead_code)]
            fn every_field_is_listed_and_qualifies(value: &$name) {
                fn qualifies<T: $crate::$trait>(_: &T) {}
                let $name { $($field),* } = value;
                $( qualifies($field); )*
            }
            assert!(
                !::core::mem::needs_drop::<$name>(),
                concat!(stringify!($name), " has drop glue: a region never runs destructors"),
            );
        };
        // SAFETY: the function above compiles only if the pattern names every field and each
        // field's type implements the trait, and the assertion rejects drop glue; a struct
        // made only of such fields meets the trait's contract (zeroed or arbitrary bytes valid
        // field by field, padding never read, no pointers).
        #[allow(unsafe_code)]
        unsafe impl $crate::$trait for $name {}
    };
}

/// Implementations for the standard building blocks (a table, per STYLE R11).
macro_rules! impl_for_std {
    ($trait:ident: $($ty:ty),* $(,)?) => {
        $(
            // SAFETY: zero is a valid value of this std type, which holds no pointers and has
            // no drop glue; atomics mutate only atomically through `&self`, integers and floats
            // accept any bit pattern.
            #[allow(unsafe_code)]
            unsafe impl $trait for $ty {}
        )*
    };
}

impl_for_std!(ShmSafe:
    (), AtomicBool, AtomicU8, AtomicI8, AtomicU16, AtomicI16, AtomicU32, AtomicI32, AtomicU64,
    AtomicI64, AtomicUsize, AtomicIsize,
);
impl_for_std!(ShmPlain:
    (), u8, i8, u16, i16, u32, i32, u64, i64, u128, i128, usize, isize, f32, f64,
);

// SAFETY: an array is N values side by side with no bytes between them, so it meets the
// contract when its element does.
#[allow(unsafe_code)]
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl<T: ShmPlain, const N: usize> ShmPlain for [T; N] {}

/// Why a [`Region`] could not be laid out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegionError {
    /// The header plus `len` items do not fit in the address space.
    #[error("a region of {len} items overflows")]
    Overflow {
        /// Requested number of items.
        len: usize,
    },
    /// The memory is smaller than the layout.
    #[error("region of {have} bytes is too small for {need}")]
    TooSmall {
        /// Bytes the layout needs.
        need: usize,
        /// Bytes the memory has.
        have: usize,
    },
    /// The layout needs a stricter alignment than the memory guarantees.
    #[error("layout needs {need}-byte alignment, the memory guarantees {have}")]
    Misaligned {
        /// Alignment of the header and items.
        need: usize,
        /// Alignment the memory's constructor guarantees.
        have: usize,
    },
    /// `mmap` failed.
    #[error("mapping shared memory: {0}")]
    Map(#[source] io::Error),
}

impl From<RegionError> for io::Error {
    fn from(e: RegionError) -> io::Error {
        match e {
            RegionError::Map(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidInput, other),
        }
    }
}

/// A header `H` followed by `len` items `S`, laid over memory this value owns.
///
/// The references it hands out live as long as the borrow of the region, never longer; put
/// the region in an `Arc` to share it between threads, and create it before fork to share
/// it between processes ([`Region::map`]). Use `Region<T>` (items `()`, `len` 0) for a
/// single value.
pub struct Region<H, S = ()> {
    /// Owned and never handed out, so no other view can alias the memory; zero-filled when
    /// taken over, and changed since only through `H` and `S`.
    mem: SharedRegion,
    /// Number of items.
    len: usize,
    /// Byte offset of the first item (after the header, padded to the items' alignment).
    items_at: usize,
    _layout: PhantomData<(H, S)>,
}

impl<H, S> fmt::Debug for Region<H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("len", &self.len)
            .field("bytes", &self.mem.len())
            .field("shared", &self.mem.is_shared())
            .finish()
    }
}

impl<H: ShmSafe, S: ShmSafe> Region<H, S> {
    /// The layout of a header plus `len` items, and where the items start.
    fn layout(len: usize) -> Result<(Layout, usize), RegionError> {
        let items = Layout::array::<S>(len).map_err(|_| RegionError::Overflow { len })?;
        Layout::new::<H>()
            .extend(items)
            .map_err(|_| RegionError::Overflow { len })
    }

    /// Bytes needed for a header plus `len` items.
    pub fn size_for(len: usize) -> Result<usize, RegionError> {
        Ok(Self::layout(len)?.0.size())
    }

    /// Map a zeroed shared region for a header plus `len` items. Processes forked afterwards
    /// see the same memory.
    pub fn map(len: usize) -> Result<Self, RegionError> {
        let size = Self::size_for(len)?;
        let mem = ruwsgi_sys::mmap_shared_anon(size.max(1)).map_err(RegionError::Map)?;
        Self::over(mem, len)
    }

    /// A zeroed region on the heap, laid out as [`map`](Self::map) would (for tests; not
    /// shared with forked processes).
    pub fn on_heap(len: usize) -> Result<Self, RegionError> {
        Self::over(SharedRegion::on_heap(Self::size_for(len)?), len)
    }

    /// Take `mem` over as a header plus `len` items, after checking its size and that its
    /// guaranteed alignment suits `H` and `S`. `mem` must be as its constructor returned it
    /// (zero-filled), which it is unless unsafe code wrote through
    /// [`SharedRegion::as_ptr`].
    pub fn over(mem: SharedRegion, len: usize) -> Result<Self, RegionError> {
        let (layout, items_at) = Self::layout(len)?;
        if layout.align() > mem.align() || mem.as_ptr().as_ptr().addr() % layout.align() != 0 {
            return Err(RegionError::Misaligned {
                need: layout.align(),
                have: mem.align(),
            });
        }
        if mem.len() < layout.size() {
            return Err(RegionError::TooSmall {
                need: layout.size(),
                have: mem.len(),
            });
        }
        Ok(Region {
            mem,
            len,
            items_at,
            _layout: PhantomData,
        })
    }

    /// The header.
    pub fn header(&self) -> &H {
        self.parts().0
    }

    /// The items, in order.
    pub fn items(&self) -> &[S] {
        self.parts().1
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the memory is shared with forked processes (mapped, not on the heap).
    pub fn is_shared(&self) -> bool {
        self.mem.is_shared()
    }

    #[allow(unsafe_code)] // the one place region memory becomes references (STYLE R6)
    fn parts(&self) -> (&H, &[S]) {
        let base = self.mem.as_ptr().as_ptr();
        // SAFETY: `over` checked that the memory holds the header at offset 0 and `len` items
        // at `items_at` (`Layout::extend` of the two), aligned for both. The memory was
        // zero-filled when taken over and has since been changed only through `H` and `S`
        // (this value owns it and hands out nothing else), and `ShmSafe` makes zeroed bytes
        // valid and shared use by other threads and processes sound. The references borrow
        // `self`, which unmaps or frees the memory only when dropped.
        unsafe {
            let header = &*base.cast::<H>();
            let items = std::slice::from_raw_parts(base.add(self.items_at).cast::<S>(), self.len);
            (header, items)
        }
    }
}

#[cfg(test)]
mod tests;
