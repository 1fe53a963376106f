//! Shared areas (`sharedarea`): blocks of raw memory every process of the instance reads
//! and writes by position (`uwsgi.sharedarea_read(id, pos)`, `..._write64`, ...).
//!
//! An area is a [`Region`] whose header holds its lock and whose items are the bytes, as
//! atomics: processes read and write the same memory at once without any lock (as uWSGI
//! allows), so every byte access is an atomic one and no access is undefined behaviour,
//! whatever the app does. Multi-byte values are native-endian and read or written byte by
//! byte: an app that needs a consistent view of several bytes takes the area's lock
//! ([`SharedArea::lock`]); the counters ([`SharedArea::add`]) take it themselves, so
//! concurrent increments are never lost. The lock is a robust mutex: a holder that dies
//! does not block the area.
//!
//! Every position is checked: an access that would reach past the end fails with
//! [`AreaError::OutOfRange`] and touches nothing.

use std::io;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use ruwsgi_sys::{LockError, RobustMutex};

use crate::region::Region;

/// Why an area access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AreaError {
    /// `pos + len` is past the end of the area.
    #[error("position {pos} + {len} bytes is outside the area ({size} bytes)")]
    OutOfRange {
        /// The position asked for.
        pos: u64,
        /// Bytes asked for.
        len: u64,
        /// The area's size.
        size: usize,
    },
    /// The area's lock failed.
    #[error("shared area lock: {0}")]
    Lock(LockError),
}

/// One shared area.
#[derive(Debug)]
pub struct SharedArea {
    region: Region<RobustMutex, AtomicU8>,
}

impl SharedArea {
    /// Map an area of `size` bytes, before any fork.
    pub fn new(size: usize) -> io::Result<SharedArea> {
        Self::ready(Region::map(size)?)
    }

    /// The same on the heap (tests; not shared with forked processes).
    pub fn on_heap(size: usize) -> io::Result<SharedArea> {
        Self::ready(Region::on_heap(size)?)
    }

    fn ready(region: Region<RobustMutex, AtomicU8>) -> io::Result<SharedArea> {
        // Fresh memory nobody else sees yet: the init cannot race another one.
        region.header().init().map_err(io::Error::other)?;
        Ok(SharedArea { region })
    }

    /// The first byte of the area, for handing the memory to a language runtime as a
    /// buffer (a writable Python `memoryview`). The bytes are atomics, so writes through
    /// this pointer are writes to interior-mutable memory; the pointer is valid as long as
    /// this area lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.region.items().as_ptr().cast::<u8>().cast_mut()
    }

    /// The area's size in bytes.
    pub fn size(&self) -> usize {
        self.region.len()
    }

    /// The bytes `pos..pos + len`, checked.
    fn span(&self, pos: u64, len: u64) -> Result<&[AtomicU8], AreaError> {
        let size = self.size();
        let out = AreaError::OutOfRange { pos, len, size };
        let end = pos.checked_add(len).ok_or(out)?;
        if end > size as u64 {
            return Err(out);
        }
        Ok(&self.region.items()[pos as usize..end as usize])
    }

    /// Copy `len` bytes from `pos` (`None`: up to the end).
    pub fn read(&self, pos: u64, len: Option<u64>) -> Result<Vec<u8>, AreaError> {
        let len = match len {
            Some(n) => n,
            None => (self.size() as u64)
                .checked_sub(pos)
                .ok_or(AreaError::OutOfRange {
                    pos,
                    len: 0,
                    size: self.size(),
                })?,
        };
        Ok(self
            .span(pos, len)?
            .iter()
            .map(|b| b.load(Relaxed))
            .collect())
    }

    /// Write `data` at `pos`.
    pub fn write(&self, pos: u64, data: &[u8]) -> Result<(), AreaError> {
        for (cell, &b) in self.span(pos, data.len() as u64)?.iter().zip(data) {
            cell.store(b, Relaxed);
        }
        Ok(())
    }

    /// The `N`-byte native-endian integer at `pos`, as raw bytes.
    pub fn read_int<const N: usize>(&self, pos: u64) -> Result<[u8; N], AreaError> {
        let mut out = [0u8; N];
        for (o, cell) in out.iter_mut().zip(self.span(pos, N as u64)?) {
            *o = cell.load(Relaxed);
        }
        Ok(out)
    }

    /// Store raw native-endian bytes at `pos`.
    pub fn write_int<const N: usize>(&self, pos: u64, bytes: [u8; N]) -> Result<(), AreaError> {
        self.write(pos, &bytes)
    }

    /// Add `delta` to the `width`-byte (4 or 8) native-endian integer at `pos`, wrapping,
    /// under the area's lock (taken here unless this thread holds it already).
    pub fn add(&self, pos: u64, width: usize, delta: i64) -> Result<(), AreaError> {
        let cells = self.span(pos, width as u64)?;
        let lock = self.region.header();
        let guard = match lock.lock() {
            Ok(g) => Some(g),
            Err(LockError::Deadlock) => None, // this thread holds it (sharedarea_wlock)
            Err(e) => return Err(AreaError::Lock(e)),
        };
        let mut raw = [0u8; 8];
        for (r, c) in raw.iter_mut().zip(cells) {
            *r = c.load(Relaxed);
        }
        let sum: [u8; 8] = if width == 4 {
            let v = i32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]);
            let mut out = [0u8; 8];
            out[..4].copy_from_slice(&v.wrapping_add(delta as i32).to_ne_bytes());
            out
        } else {
            i64::from_ne_bytes(raw).wrapping_add(delta).to_ne_bytes()
        };
        for (c, &s) in cells.iter().zip(&sum) {
            c.store(s, Relaxed);
        }
        drop(guard);
        Ok(())
    }

    /// Take the area's lock and keep it until [`unlock`](Self::unlock) from this thread.
    /// `Ok(true)` when the previous holder died holding it.
    pub fn lock(&self) -> Result<bool, AreaError> {
        let guard = self.region.header().lock().map_err(AreaError::Lock)?;
        let died = guard.owner_died();
        guard.leak();
        Ok(died)
    }

    /// Release the area's lock; `Ok(false)` when this thread does not hold it.
    pub fn unlock(&self) -> Result<bool, AreaError> {
        match self.region.header().unlock() {
            Ok(()) => Ok(true),
            Err(LockError::NotOwner) => Ok(false),
            Err(e) => Err(AreaError::Lock(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn bytes_and_integers_round_trip() {
        let a = SharedArea::on_heap(64).unwrap();
        assert_eq!(a.size(), 64);
        a.write(10, b"hello").unwrap();
        assert_eq!(a.read(10, Some(5)).unwrap(), b"hello");
        assert_eq!(a.read(60, None).unwrap(), [0, 0, 0, 0]);
        a.write_int(3, (-5i64).to_ne_bytes()).unwrap();
        assert_eq!(i64::from_ne_bytes(a.read_int(3).unwrap()), -5);
        a.write_int(20, 0xBEEFu16.to_ne_bytes()).unwrap();
        assert_eq!(u16::from_ne_bytes(a.read_int(20).unwrap()), 0xBEEF);
    }

    #[test]
    fn out_of_range_touches_nothing() {
        let a = SharedArea::on_heap(16).unwrap();
        let out = |pos, len| AreaError::OutOfRange { pos, len, size: 16 };
        assert_eq!(a.write(14, b"abc"), Err(out(14, 3)));
        assert_eq!(a.read(0, None).unwrap(), [0; 16]);
        assert_eq!(a.read(17, None), Err(out(17, 0)));
        assert_eq!(a.read(16, None).unwrap(), Vec::<u8>::new());
        assert_eq!(a.read_int::<8>(9), Err(out(9, 8)));
        assert_eq!(a.read(u64::MAX, Some(2)), Err(out(u64::MAX, 2)));
        assert_eq!(a.add(13, 4, 1), Err(out(13, 4)));
    }

    #[test]
    fn counters_wrap_and_are_never_lost() {
        let a = Arc::new(SharedArea::on_heap(16).unwrap());
        a.write_int(0, i32::MAX.to_ne_bytes()).unwrap();
        a.add(0, 4, 1).unwrap();
        assert_eq!(i32::from_ne_bytes(a.read_int(0).unwrap()), i32::MIN);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        a.add(8, 8, 2).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(i64::from_ne_bytes(a.read_int(8).unwrap()), 8000);
        // under the app's own lock too
        a.lock().unwrap();
        a.add(8, 8, -8000).unwrap();
        assert_eq!(a.unlock(), Ok(true));
        assert_eq!(a.unlock(), Ok(false));
        assert_eq!(i64::from_ne_bytes(a.read_int(8).unwrap()), 0);
    }
}
