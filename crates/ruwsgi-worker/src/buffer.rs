//! The per-connection read buffer.
//!
//! Bytes arrive here from the socket; the head parser looks at them in place, body reads
//! drain them before touching the socket again, and pipelined requests simply stay for the
//! next round. Buffers are recycled through a small per-core pool, so a busy core stops
//! allocating once it has seen its peak number of connections.

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

/// Recycled read buffers of one size.
#[derive(Debug)]
pub struct BufPool {
    cap: usize,
    free: Vec<ReadBuf>,
}

impl BufPool {
    /// A pool of buffers of `cap` bytes.
    pub fn new(cap: usize) -> BufPool {
        BufPool {
            cap,
            free: Vec::new(),
        }
    }

    /// A cleared buffer.
    pub fn get(&mut self) -> ReadBuf {
        self.free
            .pop()
            .unwrap_or_else(|| ReadBuf::with_capacity(self.cap))
    }

    /// Return a buffer for reuse (at most 256 are kept).
    pub fn put(&mut self, mut b: ReadBuf) {
        if self.free.len() < 256 {
            b.clear();
            self.free.push(b);
        }
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
}
