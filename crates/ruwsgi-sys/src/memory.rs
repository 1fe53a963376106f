//! Giving freed heap memory back to the kernel.
//!
//! After a burst (thousands of connections, each with a read buffer) the C allocator keeps
//! the freed pages mapped, and the process's RSS stays at the burst's peak. glibc returns
//! them only when asked with `malloc_trim`. Callers decide when: rarely, after a large
//! release, never per request (the call walks the allocator's free lists under its locks).

/// Ask the C allocator to return its free heap pages to the kernel (`malloc_trim(0)` on
/// glibc, which releases free pages inside the heap too, not only at its top). Returns true
/// if some memory was released. A no-op returning false on other C libraries.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_heap() -> bool {
    // SAFETY: malloc_trim takes no pointers from the caller; it only walks the allocator's
    // own free lists, under the allocator's locks, so it is sound from any thread at any time.
    unsafe { libc::malloc_trim(0) != 0 }
}

/// Ask the C allocator to return its free heap pages to the kernel: nothing to do on this
/// C library. Always false.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_heap() -> bool {
    false
}

/// The size of a memory page (4096 when the system does not say).
pub fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| usize::try_from(p).ok())
        .filter(|&p| p > 0)
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_after_freeing_is_harmless() {
        let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 64 * 1024]).collect();
        drop(blocks);
        // Whether anything was released depends on the allocator's state; the call must
        // simply succeed and leave the heap usable.
        let _ = release_free_heap();
        let v = vec![7u8; 1 << 20];
        assert_eq!(v[12345], 7);
    }
}
