//! The per-connection read buffer.
//!
//! Bytes arrive here from the socket; the head parser looks at them in place, body reads
//! drain them before touching the socket again, and pipelined requests simply stay for the
//! next round. Buffers are recycled through a small per-core pool, so a busy core stops
//! allocating once it has seen its peak number of connections. The pool gives back spares
//! that sat unused for a whole trim interval ([`BufPool::trim`], once a second), so a past
//! burst of connections does not pin its memory for the life of the worker.

use std::io::{self, Read};

/// A fixed-capacity byte buffer with a consumed front and a filled back.
#[derive(Debug)]
pub struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    /// A zeroed buffer of `cap` bytes.
    pub fn with_capacity(cap: usize) -> ReadBuf {
        ReadBuf {
            buf: vec![0; cap],
            start: 0,
            end: 0,
        }
    }

    /// The unconsumed bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Bytes `[from, to)` of the whole buffer (absolute offsets, see [`ReadBuf::start`]).
    pub fn slice(&self, from: usize, to: usize) -> &[u8] {
        &self.buf[from..to]
    }

    /// Absolute offset of the first unconsumed byte.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Number of unconsumed bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// True when no more bytes fit even after compaction.
    pub fn is_full(&self) -> bool {
        self.len() == self.buf.len()
    }

    /// Total capacity.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Mark `n` bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Move the unconsumed bytes to the front. Callers must not hold absolute offsets
    /// across this.
    pub fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Copy up to `out.len()` unconsumed bytes out and consume them.
    pub fn take_into(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len());
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.consume(n);
        n
    }

    /// Consume up to `n` bytes and borrow them (they stay in place until the next fill).
    pub fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.len());
        let from = self.start;
        self.consume(n);
        &self.buf[from..from + n]
    }

    /// One `read` from `src` into the free space (compacting first if the tail is full).
    /// `Ok(0)` means end of stream, or no room at all (check [`ReadBuf::is_full`]).
    pub fn fill_from<R: Read>(&mut self, src: &mut R) -> io::Result<usize> {
        if self.end == self.buf.len() {
            self.compact();
        }
        if self.end == self.buf.len() {
            return Ok(0);
        }
        loop {
            match src.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Most spare buffers a pool holds; buffers returned beyond this are freed at once.
const MAX_SPARE: usize = 256;

/// Recycled read buffers of one size.
#[derive(Debug)]
pub struct BufPool {
    cap: usize,
    free: Vec<ReadBuf>,
    /// The fewest spares the pool held since the last trim: that many were not needed at
    /// any moment of the interval, so they can go.
    low_water: usize,
    /// Bytes of buffers freed since the last [`BufPool::reset_released`].
    released: usize,
}

impl BufPool {
    /// A pool of buffers of `cap` bytes.
    pub fn new(cap: usize) -> BufPool {
        BufPool {
            cap,
            free: Vec::new(),
            low_water: 0,
            released: 0,
        }
    }

    /// The size of each buffer.
    pub fn buffer_size(&self) -> usize {
        self.cap
    }

    /// Spare buffers held now.
    pub fn spare(&self) -> usize {
        self.free.len()
    }

    /// A cleared buffer.
    pub fn get(&mut self) -> ReadBuf {
        let b = self
            .free
            .pop()
            .unwrap_or_else(|| ReadBuf::with_capacity(self.cap));
        self.low_water = self.low_water.min(self.free.len());
        b
    }

    /// Return a buffer for reuse (at most 256 spares are kept; beyond that it is freed).
    pub fn put(&mut self, mut b: ReadBuf) {
        if self.free.len() < MAX_SPARE {
            b.clear();
            self.free.push(b);
        } else {
            self.released += self.cap;
        }
    }

    /// Free the spares no one needed since the last trim, keeping at least `keep` of them.
    /// Meant to run on a slow tick (once a second): a spare goes only after a whole interval
    /// unused, so a steady flow of new connections keeps its buffers.
    pub fn trim(&mut self, keep: usize) {
        let idle = self.low_water.min(self.free.len());
        let excess = idle.min(self.free.len().saturating_sub(keep));
        if excess > 0 {
            self.free.truncate(self.free.len() - excess);
            self.released += excess * self.cap;
            if self.free.capacity() > 2 * self.free.len().max(keep) {
                self.free.shrink_to(self.free.len().max(keep));
            }
        }
        self.low_water = self.free.len();
    }

    /// Bytes of buffers freed (by [`BufPool::trim`] or by a full pool) since the last
    /// [`BufPool::reset_released`].
    pub fn released(&self) -> usize {
        self.released
    }

    /// Start counting freed bytes from zero.
    pub fn reset_released(&mut self) {
        self.released = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_consume_compact() {
        let mut b = ReadBuf::with_capacity(8);
        let mut src: &[u8] = b"abcdefghij";
        assert_eq!(b.fill_from(&mut src).unwrap(), 8);
        assert!(b.is_full());
        b.consume(3);
        assert_eq!(b.data(), b"defgh");
        assert_eq!(b.fill_from(&mut src).unwrap(), 2);
        assert_eq!(b.data(), b"defghij");
        let mut out = [0u8; 4];
        assert_eq!(b.take_into(&mut out), 4);
        assert_eq!(&out, b"defg");
        assert_eq!(b.data(), b"hij");
    }

    #[test]
    fn pool_trims_only_spares_unused_for_a_whole_interval() {
        let mut pool = BufPool::new(100);
        let held: Vec<ReadBuf> = (0..40).map(|_| pool.get()).collect();
        assert_eq!(pool.spare(), 0);
        for b in held {
            pool.put(b);
        }
        assert_eq!(pool.spare(), 40);
        // The 40 were in use during this interval: nothing goes yet.
        pool.trim(4);
        assert_eq!((pool.spare(), pool.released()), (40, 0));
        // Next interval: 10 taken and given back; 30 were never needed.
        let held: Vec<ReadBuf> = (0..10).map(|_| pool.get()).collect();
        for b in held {
            pool.put(b);
        }
        pool.trim(4);
        assert_eq!((pool.spare(), pool.released()), (10, 3000));
        // Idle: down to the reserve, never below it.
        pool.trim(4);
        assert_eq!((pool.spare(), pool.released()), (4, 3600));
        pool.trim(4);
        assert_eq!(pool.spare(), 4);
        pool.reset_released();
        assert_eq!(pool.released(), 0);
    }

    #[test]
    fn pool_frees_what_it_cannot_hold() {
        let mut pool = BufPool::new(10);
        let held: Vec<ReadBuf> = (0..MAX_SPARE + 5).map(|_| pool.get()).collect();
        for b in held {
            pool.put(b);
        }
        assert_eq!(pool.spare(), MAX_SPARE);
        assert_eq!(pool.released(), 50);
        // A reused buffer comes back cleared.
        let mut b = pool.get();
        let mut src: &[u8] = b"abc";
        b.fill_from(&mut src).unwrap();
        pool.put(b);
        assert!(pool.get().is_empty());
    }
}
