//! One cache in shared memory: a fixed table of item slots, a hash index and value blocks.
//!
//! # Memory
//! A [`Region`] holds the [`Header`] (the writers' robust lock, a sequence counter, counts)
//! and then only `AtomicU64` words: the hash index (bucket heads), the item slots (fixed
//! fields, the first 64 bytes of the key, then, without `bitmap`, the slot's own value
//! block), the rest of each slot's key when `keysize` is larger (touched only by longer
//! keys) and, with `bitmap`, the value blocks shared by every slot. Every word is an atomic, so processes that
//! read while another writes never cause undefined behaviour, and any bit pattern in the
//! table is a value the code can inspect and reject.
//!
//! # Concurrency
//! Writers take the cache's robust mutex and make the sequence counter odd while they change
//! anything, even again when done. Readers take no lock: they read the counter, look the key
//! up and copy the value, and keep the result only if the counter did not move (a seqlock).
//! Lookups bound every walk and check every offset, so what a reader sees while a writer
//! works is at worst discarded. A reader that keeps failing (a long write, or a writer that
//! died) falls back to the mutex.
//!
//! # Crash safety
//! A slot being written is marked `WRITING` first and `USED` last. A writer killed in the
//! middle leaves the mutex "owner died": the next process to take it rebuilds everything
//! derived (index chains, free list, block bitmap, count) from the slots, dropping `WRITING`
//! slots and any slot whose fields do not check out. Every other item survives.
//!
//! # Eviction and expiry
//! Expiry is an absolute unix time per item (0: never), in whole seconds: an item lives
//! through the whole second its expiry names, so `expires=N` keeps it at least N seconds.
//! It is enforced on every read. The master
//! deletes expired items periodically ([`Table::sweep`]). With `purge_lru`, each read and
//! write stamps its item with a logical clock (a relaxed store, no lock), and an insert into
//! a full cache evicts the item with the oldest stamp.

use std::io;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use ruwsgi_shm::{impl_shm, Region};
use ruwsgi_sys::{LockError, RobustGuard, RobustMutex};

use crate::{CacheError, Item};

const FREE: u64 = 0;
const USED: u64 = 1;
const WRITING: u64 = 2;

/// Fixed words at the start of a slot.
const F_STATE: usize = 0;
/// `key_len | value_len << 32`.
const F_LENS: usize = 1;
const F_HASH: usize = 2;
const F_EXPIRES: usize = 3;
/// Next slot in the bucket (or free list): slot index + 1, 0 = end.
const F_NEXT: usize = 4;
/// `first_block | block_count << 32`.
const F_BLOCKS: usize = 5;
const F_STAMP: usize = 6;
const SLOT_FIXED: usize = 8;
/// Key words kept in the slot itself (the first 64 bytes of a key); the rest of a longer
/// key lives in the slot's row of the overflow area. Slots stay 128 bytes whatever the
/// `keysize`, so a lookup of a short key touches two adjacent cache lines of one page.
const INLINE_KEY_WORDS: usize = 8;

/// Optimistic read attempts before a reader takes the lock.
const READ_ATTEMPTS: usize = 64;

/// The shape of a cache, fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Item slots (every one usable).
    pub items: usize,
    /// Bytes per value block.
    pub blocksize: usize,
    /// Value blocks (at least `items`).
    pub blocks: usize,
    /// Longest key, in bytes.
    pub keysize: usize,
    /// Buckets of the hash index.
    pub hashsize: usize,
    /// Values take as many contiguous blocks as they need (else one block per slot).
    pub bitmap: bool,
}

/// How a cache behaves when full, and its math.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Evict the least recently used item when no slot is free.
    pub purge_lru: bool,
    /// Delete expired items when full, then retry.
    pub sweep_on_full: bool,
    /// Empty the whole cache when full (and nothing else freed room), then retry.
    pub clear_on_full: bool,
    /// Starting value of a missing key for the math operations.
    pub math_initial: i64,
    /// The key hash: `djb33x` (false) or `murmur2` (true).
    pub murmur2: bool,
}

/// A math operation on an 8-byte native integer value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathOp {
    /// `cache_inc`.
    Add,
    /// `cache_dec`.
    Sub,
    /// `cache_mul`.
    Mul,
    /// `cache_div` (division by zero stores 0).
    Div,
}

#[repr(C, align(128))]
struct Header {
    lock: RobustMutex,
    /// Odd while a writer changes the table.
    seq: AtomicU64,
    count: AtomicU64,
    /// Head of the free-slot list (slot + 1, 0 = empty).
    free: AtomicU64,
    /// Counters every read bumps, on a cache line of their own so that they do not slow
    /// down the readers of `seq`.
    stats: Counters,
}
impl_shm!(ShmSafe for Header { lock, seq, count, free, stats });

#[repr(C, align(128))]
struct Counters {
    /// Logical clock for LRU stamps.
    clock: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    full: AtomicU64,
}
impl_shm!(ShmSafe for Counters { clock, hits, misses, full });

/// Counters of one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Items stored.
    pub items: u64,
    /// Reads that found their key (reads at the same instant may count once).
    pub hits: u64,
    /// Reads that did not (likewise).
    pub misses: u64,
    /// Inserts that found the cache full.
    pub full: u64,
}

/// Where the parts of a table start, in words.
struct Layout {
    slot_words: usize,
    inline: usize,
    over_words: usize,
    block_words: usize,
    slots_at: usize,
    keys_at: usize,
    blocks_at: usize,
    bitmap_at: usize,
    total: usize,
}

/// One cache's table.
pub struct Table {
    geo: Geometry,
    policy: Policy,
    region: Region<Header, AtomicU64>,
    slot_words: usize,
    /// Key words in each slot; the other `over_words` are in the overflow area.
    inline_key_words: usize,
    over_words: usize,
    block_words: usize,
    index_at: usize,
    slots_at: usize,
    keys_at: usize,
    blocks_at: usize,
    bitmap_at: usize,
    /// `hashsize - 1` when hashsize is a power of two (a mask instead of a division).
    hash_mask: Option<u64>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("geometry", &self.geo)
            .field("policy", &self.policy)
            .finish()
    }
}

/// The words of the table, with the held lock's proof for writers.
struct Writer<'a> {
    t: &'a Table,
    _guard: RobustGuard<'a>,
}

fn words_for(bytes: usize) -> usize {
    bytes.div_ceil(8)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// uWSGI's default key hash.
#[inline]
fn djb33x(key: &[u8]) -> u64 {
    let mut h: u32 = 5381;
    for &b in key {
        h = (h << 5).wrapping_add(h) ^ u32::from(b);
    }
    u64::from(h)
}

/// MurmurHash2, 32-bit, seed 0.
fn murmur2(key: &[u8]) -> u64 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, &b) in rest.iter().enumerate() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    u64::from(h)
}

/// Call `f(k, word)` for the bytes packed into native-endian words, the last one
/// zero-padded (whole words without a variable-length copy).
#[inline]
fn for_each_word(bytes: &[u8], mut f: impl FnMut(usize, u64)) {
    let mut chunks = bytes.chunks_exact(8);
    let mut k = 0;
    for c in &mut chunks {
        f(k, u64::from_ne_bytes(c.try_into().expect("8-byte chunk")));
        k += 1;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Byte by byte into a register: a short copy into a stack array read back as one
        // word would stall on store forwarding.
        let w = rest.iter().enumerate().fold(0u64, |w, (j, &b)| {
            let shift = if cfg!(target_endian = "little") {
                8 * j
            } else {
                56 - 8 * j
            };
            w | u64::from(b) << shift
        });
        f(k, w);
    }
}

/// Copy the first `out.len()` bytes held by `words` into `out`.
#[inline]
fn copy_words(words: &[AtomicU64], out: &mut [u8]) {
    let mut chunks = out.chunks_exact_mut(8);
    let mut k = 0;
    for c in &mut chunks {
        c.copy_from_slice(&words[k].load(Ordering::Relaxed).to_ne_bytes());
        k += 1;
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let n = rest.len();
        rest.copy_from_slice(&words[k].load(Ordering::Relaxed).to_ne_bytes()[..n]);
    }
}

/// Run `f` over `key` packed into words: on the stack for keys up to 256 bytes.
#[inline]
fn with_words<R>(key: &[u8], f: impl FnOnce(&[u64]) -> R) -> R {
    if key.len() <= 64 {
        // Most keys: a line of stack to clear, not four.
        let mut small = [0u64; 8];
        for_each_word(key, |k, w| small[k] = w);
        f(&small[..words_for(key.len())])
    } else if key.len() <= 256 {
        let mut small = [0u64; 32];
        for_each_word(key, |k, w| small[k] = w);
        f(&small[..words_for(key.len())])
    } else {
        let mut large = Vec::new();
        pack(key, &mut large);
        f(&large)
    }
}

/// Bytes packed into native-endian words, the last one zero-padded.
fn pack(bytes: &[u8], out: &mut Vec<u64>) {
    out.clear();
    for_each_word(bytes, |_, w| out.push(w));
}

/// A value found by [`Table::get_with`]: its length, and a copy of it on demand.
pub struct ValueRef<'a> {
    words: &'a [AtomicU64],
    len: usize,
    expires_at: u64,
}

impl ValueRef<'_> {
    /// Its length in bytes (never 0).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: an empty value is never stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its expiry (unix seconds, 0 = never).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Copy it into `out`, whose length must be [`len`](Self::len).
    pub fn copy_to(&self, out: &mut [u8]) {
        assert_eq!(
            out.len(),
            self.len,
            "copy_to needs a buffer of the value's length"
        );
        copy_words(self.words, out);
    }
}

impl Table {
    /// Where each part of the table starts, for `geo`.
    fn layout(geo: &Geometry) -> Layout {
        let key_words = words_for(geo.keysize);
        let inline = key_words.min(INLINE_KEY_WORDS);
        let over_words = key_words - inline;
        let block_words = words_for(geo.blocksize);
        // Without a bitmap each slot owns one block: it follows the slot's key words, so
        // a lookup reads one run of adjacent memory.
        let slot_words = SLOT_FIXED + inline + if geo.bitmap { 0 } else { block_words };
        let shared_blocks = if geo.bitmap { geo.blocks } else { 0 };
        let slots_at = geo.hashsize;
        let keys_at = slots_at + geo.items * slot_words;
        let blocks_at = keys_at + geo.items * over_words;
        let bitmap_at = blocks_at + shared_blocks * block_words;
        let total = bitmap_at
            + if geo.bitmap {
                geo.blocks.div_ceil(64)
            } else {
                0
            };
        Layout {
            slot_words,
            inline,
            over_words,
            block_words,
            slots_at,
            keys_at,
            blocks_at,
            bitmap_at,
            total,
        }
    }

    fn check(geo: &Geometry) -> io::Result<()> {
        let bad = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_string()));
        if geo.items == 0 || geo.items >= u32::MAX as usize {
            return bad("items must be between 1 and 2^32-2");
        }
        if geo.blocksize == 0 || geo.keysize == 0 || geo.keysize > 65535 || geo.hashsize == 0 {
            return bad("blocksize, keysize (< 65536) and hashsize must be positive");
        }
        if geo.blocks < geo.items || geo.blocks >= u32::MAX as usize {
            return bad("blocks must be at least items");
        }
        Ok(())
    }

    /// Map a table for `geo`, shared with processes forked afterwards.
    pub fn new(geo: Geometry, policy: Policy) -> io::Result<Table> {
        Self::check(&geo)?;
        let total = Self::layout(&geo).total;
        Self::ready(geo, policy, Region::map(total)?)
    }

    /// The same on the heap (tests).
    pub fn on_heap(geo: Geometry, policy: Policy) -> io::Result<Table> {
        Self::check(&geo)?;
        let total = Self::layout(&geo).total;
        Self::ready(geo, policy, Region::on_heap(total)?)
    }

    fn ready(
        geo: Geometry,
        policy: Policy,
        region: Region<Header, AtomicU64>,
    ) -> io::Result<Table> {
        let Layout {
            slot_words,
            inline,
            over_words,
            block_words,
            slots_at,
            keys_at,
            blocks_at,
            bitmap_at,
            ..
        } = Self::layout(&geo);
        region.header().lock.init().map_err(io::Error::other)?;
        let t = Table {
            geo,
            policy,
            region,
            slot_words,
            inline_key_words: inline,
            over_words,
            block_words,
            index_at: 0,
            slots_at,
            keys_at,
            blocks_at,
            bitmap_at,
            hash_mask: geo
                .hashsize
                .is_power_of_two()
                .then(|| geo.hashsize as u64 - 1),
        };
        let w = t.write_lock().map_err(io::Error::other)?;
        w.rebuild();
        drop(w);
        Ok(t)
    }

    /// The shape of this cache.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// How this cache behaves (full policies, math start value, key hash).
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Largest value this cache stores.
    pub fn max_value(&self) -> usize {
        if self.geo.bitmap {
            self.geo.blocksize * self.geo.blocks
        } else {
            self.geo.blocksize
        }
    }

    #[inline]
    fn words(&self) -> &[AtomicU64] {
        self.region.items()
    }

    #[inline]
    fn w(&self, at: usize) -> &AtomicU64 {
        &self.words()[at]
    }

    #[inline]
    fn slot(&self, i: usize, field: usize) -> &AtomicU64 {
        self.w(self.slots_at + i * self.slot_words + field)
    }

    /// Word `k` of slot `i`'s key.
    fn key_word(&self, i: usize, k: usize) -> &AtomicU64 {
        if k < self.inline_key_words {
            self.slot(i, SLOT_FIXED + k)
        } else {
            self.w(self.keys_at + i * self.over_words + (k - self.inline_key_words))
        }
    }

    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        if self.policy.murmur2 {
            murmur2(key)
        } else {
            djb33x(key)
        }
    }

    #[inline]
    fn bucket(&self, hash: u64) -> &AtomicU64 {
        let at = match self.hash_mask {
            Some(mask) => hash & mask,
            None => hash % self.geo.hashsize as u64,
        };
        self.w(self.index_at + at as usize)
    }

    /// Take the writers' lock; a dead previous holder's half-done work is repaired first.
    fn write_lock(&self) -> Result<Writer<'_>, LockError> {
        let guard = self.region.header().lock.lock()?;
        let died = guard.owner_died();
        let w = Writer {
            t: self,
            _guard: guard,
        };
        if died {
            ruwsgi_sys::log_line(
                "ruwsgi: a cache writer died in the middle of a change: rebuilding the cache index",
            );
            w.rebuild();
        }
        Ok(w)
    }

    /// Find `key` (packed in `kw`): its slot, if the walk sees it. Bounded and checked, so
    /// a concurrent change can only make it miss or find a slot the caller re-validates.
    #[inline]
    fn find(&self, key: &[u8], kw: &[u64], hash: u64) -> Option<usize> {
        let mut next = self.bucket(hash).load(Ordering::Acquire);
        for _ in 0..=self.geo.items {
            if next == 0 || next > self.geo.items as u64 {
                return None;
            }
            let i = (next - 1) as usize;
            if self.slot(i, F_STATE).load(Ordering::Acquire) == USED
                && self.slot(i, F_HASH).load(Ordering::Relaxed) == hash
                && (self.slot(i, F_LENS).load(Ordering::Relaxed) & 0xFFFF_FFFF) as usize
                    == key.len()
                && kw
                    .iter()
                    .enumerate()
                    .all(|(k, &word)| self.key_word(i, k).load(Ordering::Relaxed) == word)
            {
                return Some(i);
            }
            next = self.slot(i, F_NEXT).load(Ordering::Acquire);
        }
        None
    }

    /// The value words of slot `i` (checked against the geometry).
    #[inline]
    fn value_span(&self, i: usize) -> Option<(usize, usize)> {
        let lens = self.slot(i, F_LENS).load(Ordering::Relaxed);
        let len = (lens >> 32) as usize;
        if len == 0 || len > self.max_value() {
            return None;
        }
        let first = if self.geo.bitmap {
            let b = self.slot(i, F_BLOCKS).load(Ordering::Relaxed);
            let (first, count) = ((b & 0xFFFF_FFFF) as usize, (b >> 32) as usize);
            if first + count > self.geo.blocks || count * self.geo.blocksize < len {
                return None;
            }
            first
        } else {
            0
        };
        Some((self.value_at(i, first), len))
    }

    /// Where the value of slot `i` starts: its first block in the shared blocks (bitmap
    /// mode), or its own block after its key words.
    fn value_at(&self, i: usize, first_block: usize) -> usize {
        if self.geo.bitmap {
            self.blocks_at + first_block * self.block_words
        } else {
            self.slots_at + i * self.slot_words + SLOT_FIXED + self.inline_key_words
        }
    }

    fn copy_value(&self, i: usize) -> Option<Vec<u8>> {
        let (at, len) = self.value_span(i)?;
        let mut out = vec![0; len];
        copy_words(&self.words()[at..at + words_for(len)], &mut out);
        Some(out)
    }

    /// Look `key` up and read what `read` wants of its slot, lock-free when possible.
    #[inline]
    fn read<T>(
        &self,
        key: &[u8],
        read: impl FnMut(&Table, usize) -> Option<T>,
    ) -> Result<Option<T>, CacheError> {
        if key.is_empty() || key.len() > self.geo.keysize {
            return Err(CacheError::BadKey);
        }
        let hash = self.hash(key);
        with_words(key, |kw| self.read_words(key, kw, hash, read))
    }

    #[inline]
    fn read_words<T>(
        &self,
        key: &[u8],
        kw: &[u64],
        hash: u64,
        mut read: impl FnMut(&Table, usize) -> Option<T>,
    ) -> Result<Option<T>, CacheError> {
        let head = self.region.header();
        let lru = self.policy.purge_lru;
        let mut lookup = |t: &Table| -> Option<T> {
            let i = t.find(key, kw, hash)?;
            let exp = t.slot(i, F_EXPIRES).load(Ordering::Relaxed);
            if exp != 0 && exp < now_unix() {
                return None;
            }
            let out = read(t, i)?;
            if lru {
                let stamp = head.stats.clock.fetch_add(1, Ordering::Relaxed);
                t.slot(i, F_STAMP).store(stamp, Ordering::Relaxed);
            }
            Some(out)
        };
        for _ in 0..READ_ATTEMPTS {
            let s1 = head.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let got = lookup(self);
            fence(Ordering::Acquire);
            if head.seq.load(Ordering::Relaxed) == s1 {
                self.count_read(got.is_some());
                return Ok(got);
            }
        }
        // A long write or a dead writer: read under the lock (which repairs the latter).
        let w = self.write_lock().map_err(|_| CacheError::Lock)?;
        let got = lookup(w.t);
        drop(w);
        self.count_read(got.is_some());
        Ok(got)
    }

    /// Look `key` up and give `make` its value, to copy where it wants, without a lock.
    /// `make` may run more than once when a writer changes the cache meanwhile: only the
    /// result of the last run is returned, the others are dropped. `None` on a miss.
    #[inline]
    pub fn get_with<T>(
        &self,
        key: &[u8],
        mut make: impl FnMut(ValueRef<'_>) -> T,
    ) -> Result<Option<T>, CacheError> {
        self.read(key, |t, i| {
            let (at, len) = t.value_span(i)?;
            Some(make(ValueRef {
                words: &t.words()[at..at + words_for(len)],
                len,
                expires_at: t.slot(i, F_EXPIRES).load(Ordering::Relaxed),
            }))
        })
    }

    /// Copy the value under `key` into `buf` (cleared first) and give its expiry (unix
    /// seconds, 0 = never); `None` on a miss. The buffer can be reused from call to call.
    pub fn get_into(&self, key: &[u8], buf: &mut Vec<u8>) -> Result<Option<u64>, CacheError> {
        self.get_with(key, |v| {
            buf.clear();
            buf.resize(v.len(), 0);
            v.copy_to(buf);
            v.expires_at()
        })
    }

    /// Count a read. A load and a store, not a locked add (which costs every read about
    /// 20 cycles); the price is that two processes counting at the same instant may count
    /// once. The counts are statistics, never used for a decision.
    fn count_read(&self, hit: bool) {
        let h = self.region.header();
        let counter = if hit { &h.stats.hits } else { &h.stats.misses };
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// The item under `key`, if present and not expired.
    pub fn get(&self, key: &[u8]) -> Result<Option<Item>, CacheError> {
        let mut value = Vec::new();
        Ok(self
            .get_into(key, &mut value)?
            .map(|expires_at| Item { value, expires_at }))
    }

    /// Whether `key` is present and not expired.
    pub fn exists(&self, key: &[u8]) -> Result<bool, CacheError> {
        Ok(self.read(key, |_, _| Some(()))?.is_some())
    }

    /// Store `value` under `key` (see [`crate::CacheBackend::store`]).
    pub fn store(
        &self,
        key: &[u8],
        value: &[u8],
        expires: u64,
        overwrite: bool,
    ) -> Result<(), CacheError> {
        self.check_item(key, value)?;
        let expires_at = if expires == 0 {
            0
        } else {
            now_unix().saturating_add(expires)
        };
        let w = self.write_lock().map_err(|_| CacheError::Lock)?;
        w.store(key, value, expires_at, overwrite, false)
    }

    fn check_item(&self, key: &[u8], value: &[u8]) -> Result<(), CacheError> {
        if key.is_empty() || key.len() > self.geo.keysize {
            return Err(CacheError::BadKey);
        }
        if value.is_empty() {
            return Err(CacheError::EmptyValue);
        }
        if value.len() > self.max_value() {
            return Err(CacheError::TooLarge);
        }
        Ok(())
    }

    /// Remove `key`: true if it was there.
    pub fn delete(&self, key: &[u8]) -> Result<bool, CacheError> {
        if key.is_empty() || key.len() > self.geo.keysize {
            return Err(CacheError::BadKey);
        }
        let w = self.write_lock().map_err(|_| CacheError::Lock)?;
        Ok(w.delete(key))
    }

    /// Remove every item.
    pub fn clear(&self) -> Result<(), CacheError> {
        let w = self.write_lock().map_err(|_| CacheError::Lock)?;
        w.begin();
        for i in 0..self.geo.items {
            self.slot(i, F_STATE).store(FREE, Ordering::Release);
        }
        w.rebuild_unsequenced();
        w.end();
        Ok(())
    }

    /// Apply `op` with `operand` to the 8-byte native integer under `key` (created from
    /// `math_initial`, expiring after `expires` seconds, when missing; an existing item
    /// keeps its expiry and its first 8 bytes are the number, whatever its length). Returns
    /// the new number.
    pub fn math(
        &self,
        key: &[u8],
        op: MathOp,
        operand: i64,
        expires: u64,
    ) -> Result<i64, CacheError> {
        self.check_item(key, &[0; 8])?;
        let w = self.write_lock().map_err(|_| CacheError::Lock)?;
        let hash = self.hash(key);
        let mut kw = Vec::new();
        pack(key, &mut kw);
        let now = now_unix();
        let existing = self.find(key, &kw, hash).filter(|&i| {
            let exp = self.slot(i, F_EXPIRES).load(Ordering::Relaxed);
            exp == 0 || exp >= now
        });
        let (current, expires_at) = match existing {
            Some(i) => {
                let v = self.copy_value(i).unwrap_or_default();
                let mut n = [0u8; 8];
                let k = v.len().min(8);
                n[..k].copy_from_slice(&v[..k]);
                (
                    i64::from_ne_bytes(n),
                    self.slot(i, F_EXPIRES).load(Ordering::Relaxed),
                )
            }
            None => (
                self.policy.math_initial,
                if expires == 0 {
                    0
                } else {
                    now.saturating_add(expires)
                },
            ),
        };
        let next = match op {
            MathOp::Add => current.wrapping_add(operand),
            MathOp::Sub => current.wrapping_sub(operand),
            MathOp::Mul => current.wrapping_mul(operand),
            MathOp::Div => current.checked_div(operand).unwrap_or(0),
        };
        w.store(key, &next.to_ne_bytes(), expires_at, true, true)?;
        Ok(next)
    }

    /// Every key present and not expired.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, CacheError> {
        self.collect_live(|w, i, _| Some(w.key_of(i)))
    }

    /// Every live item with its key, copied under the writers' lock (a consistent
    /// snapshot, for saving the cache).
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, Item)>, CacheError> {
        self.collect_live(|w, i, expires_at| {
            let value = w.t.copy_value(i)?;
            Some((w.key_of(i), Item { value, expires_at }))
        })
    }

    /// `pick` of every live (used, not expired) slot, under the writers' lock.
    fn collect_live<T>(
        &self,
        mut pick: impl FnMut(&Writer<'_>, usize, u64) -> Option<T>,
    ) -> Result<Vec<T>, CacheError> {
        let w = self.write_lock().map_err(|_| CacheError::Lock)?;
        let now = now_unix();
        let mut out = Vec::new();
        for i in 0..self.geo.items {
            if self.slot(i, F_STATE).load(Ordering::Relaxed) != USED {
                continue;
            }
            let expires_at = self.slot(i, F_EXPIRES).load(Ordering::Relaxed);
            if expires_at != 0 && expires_at < now {
                continue;
            }
            out.extend(pick(&w, i, expires_at));
        }
        Ok(out)
    }

    /// Store an item with an absolute expiry (restoring a saved cache); `set` semantics.
    pub fn restore(&self, key: &[u8], value: &[u8], expires_at: u64) -> Result<(), CacheError> {
        self.check_item(key, value)?;
        let w = self.write_lock().map_err(|_| CacheError::Lock)?;
        w.store(key, value, expires_at, false, false)
    }

    /// Changes so far: a number that moves whenever the table is written.
    pub fn version(&self) -> u64 {
        self.region.header().seq.load(Ordering::Acquire)
    }

    /// Delete the items expired at `now` (unix seconds); returns how many.
    pub fn sweep(&self, now: u64) -> usize {
        let Ok(w) = self.write_lock() else { return 0 };
        w.sweep(now)
    }

    /// The cache's counters.
    pub fn stats(&self) -> Stats {
        let h = self.region.header();
        Stats {
            items: h.count.load(Ordering::Relaxed),
            hits: h.stats.hits.load(Ordering::Relaxed),
            misses: h.stats.misses.load(Ordering::Relaxed),
            full: h.stats.full.load(Ordering::Relaxed),
        }
    }
}

impl Writer<'_> {
    fn head(&self) -> &Header {
        self.t.region.header()
    }

    /// Readers retry from here until [`end`](Self::end).
    fn begin(&self) {
        let h = self.head();
        let s = h.seq.load(Ordering::Relaxed);
        // After a dead writer the counter may be odd already: keep it odd.
        h.seq.store(s | 1, Ordering::Relaxed);
        fence(Ordering::Release);
    }

    fn end(&self) {
        let h = self.head();
        let s = h.seq.load(Ordering::Relaxed);
        h.seq.store((s | 1) + 1, Ordering::Release);
    }

    fn key_of(&self, i: usize) -> Vec<u8> {
        let t = self.t;
        let klen =
            ((t.slot(i, F_LENS).load(Ordering::Relaxed) & 0xFFFF_FFFF) as usize).min(t.geo.keysize);
        let mut out = Vec::with_capacity(klen.next_multiple_of(8));
        for k in 0..words_for(klen) {
            out.extend_from_slice(&t.key_word(i, k).load(Ordering::Relaxed).to_ne_bytes());
        }
        out.truncate(klen);
        out
    }

    /// Rebuild the index, the free list, the block bitmap and the count from the slots,
    /// dropping slots that were being written or do not check out.
    fn rebuild(&self) {
        self.begin();
        self.rebuild_unsequenced();
        self.end();
    }

    fn rebuild_unsequenced(&self) {
        let t = self.t;
        for b in 0..t.geo.hashsize {
            t.w(t.index_at + b).store(0, Ordering::Relaxed);
        }
        if t.geo.bitmap {
            for k in 0..t.geo.blocks.div_ceil(64) {
                t.w(t.bitmap_at + k).store(0, Ordering::Relaxed);
            }
        }
        let mut count = 0u64;
        let mut free = 0u64;
        for i in (0..t.geo.items).rev() {
            let ok = t.slot(i, F_STATE).load(Ordering::Relaxed) == USED && self.slot_is_sound(i);
            if ok {
                let hash = t.slot(i, F_HASH).load(Ordering::Relaxed);
                let bucket = t.bucket(hash);
                t.slot(i, F_NEXT)
                    .store(bucket.load(Ordering::Relaxed), Ordering::Relaxed);
                bucket.store(i as u64 + 1, Ordering::Relaxed);
                if t.geo.bitmap {
                    let b = t.slot(i, F_BLOCKS).load(Ordering::Relaxed);
                    self.mark_blocks((b & 0xFFFF_FFFF) as usize, (b >> 32) as usize, true);
                }
                count += 1;
            } else {
                t.slot(i, F_STATE).store(FREE, Ordering::Relaxed);
                t.slot(i, F_NEXT).store(free, Ordering::Relaxed);
                free = i as u64 + 1;
            }
        }
        let h = self.head();
        h.count.store(count, Ordering::Relaxed);
        h.free.store(free, Ordering::Relaxed);
    }

    /// A `USED` slot whose lengths, hash and blocks are coherent (and, in bitmap mode,
    /// whose blocks no earlier slot claimed).
    fn slot_is_sound(&self, i: usize) -> bool {
        let t = self.t;
        let lens = t.slot(i, F_LENS).load(Ordering::Relaxed);
        let klen = (lens & 0xFFFF_FFFF) as usize;
        if klen == 0 || klen > t.geo.keysize || t.value_span(i).is_none() {
            return false;
        }
        if t.hash(&self.key_of(i)) != t.slot(i, F_HASH).load(Ordering::Relaxed) {
            return false;
        }
        if t.geo.bitmap {
            let b = t.slot(i, F_BLOCKS).load(Ordering::Relaxed);
            let (first, n) = ((b & 0xFFFF_FFFF) as usize, (b >> 32) as usize);
            if (first..first + n).any(|blk| self.block_used(blk)) {
                return false;
            }
        }
        true
    }

    fn block_used(&self, blk: usize) -> bool {
        let t = self.t;
        t.w(t.bitmap_at + blk / 64).load(Ordering::Relaxed) & (1 << (blk % 64)) != 0
    }

    fn mark_blocks(&self, first: usize, n: usize, used: bool) {
        let t = self.t;
        for blk in first..first + n {
            let w = t.w(t.bitmap_at + blk / 64);
            let bit = 1u64 << (blk % 64);
            let v = w.load(Ordering::Relaxed);
            w.store(if used { v | bit } else { v & !bit }, Ordering::Relaxed);
        }
    }

    /// First run of `n` free blocks.
    fn find_blocks(&self, n: usize) -> Option<usize> {
        let mut run = 0;
        for blk in 0..self.t.geo.blocks {
            if self.block_used(blk) {
                run = 0;
            } else {
                run += 1;
                if run == n {
                    return Some(blk + 1 - n);
                }
            }
        }
        None
    }

    fn unlink(&self, i: usize) {
        let t = self.t;
        let hash = t.slot(i, F_HASH).load(Ordering::Relaxed);
        let bucket = t.bucket(hash);
        let target = i as u64 + 1;
        let after = t.slot(i, F_NEXT).load(Ordering::Relaxed);
        if bucket.load(Ordering::Relaxed) == target {
            bucket.store(after, Ordering::Release);
            return;
        }
        let mut cur = bucket.load(Ordering::Relaxed);
        for _ in 0..=t.geo.items {
            if cur == 0 || cur > t.geo.items as u64 {
                return;
            }
            let next = t.slot((cur - 1) as usize, F_NEXT);
            if next.load(Ordering::Relaxed) == target {
                next.store(after, Ordering::Release);
                return;
            }
            cur = next.load(Ordering::Relaxed);
        }
    }

    /// Remove slot `i` (a `USED` one) and give its room back.
    fn remove_slot(&self, i: usize) {
        let t = self.t;
        self.unlink(i);
        t.slot(i, F_STATE).store(FREE, Ordering::Release);
        if t.geo.bitmap {
            let b = t.slot(i, F_BLOCKS).load(Ordering::Relaxed);
            self.mark_blocks((b & 0xFFFF_FFFF) as usize, (b >> 32) as usize, false);
        }
        let h = self.head();
        t.slot(i, F_NEXT)
            .store(h.free.load(Ordering::Relaxed), Ordering::Relaxed);
        h.free.store(i as u64 + 1, Ordering::Relaxed);
        h.count.fetch_sub(1, Ordering::Relaxed);
    }

    fn delete(&self, key: &[u8]) -> bool {
        let t = self.t;
        let hash = t.hash(key);
        let mut kw = Vec::new();
        pack(key, &mut kw);
        let Some(i) = t.find(key, &kw, hash) else {
            return false;
        };
        let now = now_unix();
        let exp = t.slot(i, F_EXPIRES).load(Ordering::Relaxed);
        self.begin();
        self.remove_slot(i);
        self.end();
        exp == 0 || exp >= now
    }

    /// Remove the items expired at `now`, as a change of its own. The walk only reads, so
    /// readers go on without a retry until the first removal: a sweep that finds nothing to
    /// remove (most sweeps of a cache whose items do not expire) never makes a reader wait.
    fn sweep(&self, now: u64) -> usize {
        let n = self.remove_expired(now, true);
        if n > 0 {
            self.end();
        }
        n
    }

    /// A free slot, making room as the policy allows.
    fn take_slot(&self) -> Option<usize> {
        let t = self.t;
        let h = self.head();
        let pop = || {
            let f = h.free.load(Ordering::Relaxed);
            if f == 0 || f > t.geo.items as u64 {
                return None;
            }
            let i = (f - 1) as usize;
            h.free
                .store(t.slot(i, F_NEXT).load(Ordering::Relaxed), Ordering::Relaxed);
            Some(i)
        };
        if let Some(i) = pop() {
            return Some(i);
        }
        h.stats.full.fetch_add(1, Ordering::Relaxed);
        self.make_room();
        pop()
    }

    /// The cache is full: evict or sweep per policy.
    fn make_room(&self) {
        let t = self.t;
        let mut freed = 0;
        if t.policy.sweep_on_full {
            freed += self.remove_expired(now_unix(), false);
        }
        if freed == 0 && t.policy.purge_lru {
            let oldest = (0..t.geo.items)
                .filter(|&i| t.slot(i, F_STATE).load(Ordering::Relaxed) == USED)
                .min_by_key(|&i| t.slot(i, F_STAMP).load(Ordering::Relaxed));
            if let Some(i) = oldest {
                self.remove_slot(i);
                freed += 1;
            }
        }
        if freed == 0 && t.policy.clear_on_full {
            for i in 0..t.geo.items {
                t.slot(i, F_STATE).store(FREE, Ordering::Release);
            }
            self.rebuild_unsequenced();
        }
    }

    /// Remove the items expired at `now`; `begin_first`: start the change (see
    /// [`Writer::begin`]) before the first removal, for a caller that is not inside one.
    fn remove_expired(&self, now: u64, begin_first: bool) -> usize {
        let t = self.t;
        let mut n = 0;
        for i in 0..t.geo.items {
            if t.slot(i, F_STATE).load(Ordering::Relaxed) == USED {
                let exp = t.slot(i, F_EXPIRES).load(Ordering::Relaxed);
                if exp != 0 && exp < now {
                    if n == 0 && begin_first {
                        self.begin();
                    }
                    self.remove_slot(i);
                    n += 1;
                }
            }
        }
        n
    }

    fn write_value(&self, i: usize, value: &[u8], first_block: usize) {
        let t = self.t;
        let start = t.value_at(i, first_block);
        let words = &t.words()[start..start + words_for(value.len())];
        for_each_word(value, |k, w| words[k].store(w, Ordering::Relaxed));
    }

    /// Insert or replace. `keep_stamp`: math operations do not count as a use.
    fn store(
        &self,
        key: &[u8],
        value: &[u8],
        expires_at: u64,
        overwrite: bool,
        keep_stamp: bool,
    ) -> Result<(), CacheError> {
        let t = self.t;
        let hash = t.hash(key);
        with_words(key, |kw| {
            self.store_words(key, kw, hash, value, expires_at, overwrite, keep_stamp)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn store_words(
        &self,
        key: &[u8],
        kw: &[u64],
        hash: u64,
        value: &[u8],
        expires_at: u64,
        overwrite: bool,
        keep_stamp: bool,
    ) -> Result<(), CacheError> {
        let t = self.t;
        let existing = t.find(key, kw, hash);
        let live = existing.filter(|&i| {
            let exp = t.slot(i, F_EXPIRES).load(Ordering::Relaxed);
            exp == 0 || exp >= now_unix()
        });
        if live.is_some() && !overwrite {
            return Err(CacheError::Exists);
        }
        let nblocks = value.len().div_ceil(t.geo.blocksize).max(1);
        self.begin();
        let result = (|| {
            // Bitmap mode: new blocks before the old ones are freed (a value never grows
            // into its own blocks).
            let first_block = if t.geo.bitmap {
                match self.find_blocks(nblocks) {
                    Some(b) => b,
                    None => {
                        self.head().stats.full.fetch_add(1, Ordering::Relaxed);
                        self.make_room();
                        self.find_blocks(nblocks).ok_or(CacheError::Full)?
                    }
                }
            } else {
                0
            };
            if let Some(i) = existing {
                // Replace in place: the slot is WRITING until every field is right.
                t.slot(i, F_STATE).store(WRITING, Ordering::Release);
                if t.geo.bitmap {
                    let b = t.slot(i, F_BLOCKS).load(Ordering::Relaxed);
                    self.mark_blocks((b & 0xFFFF_FFFF) as usize, (b >> 32) as usize, false);
                }
                self.fill_value(
                    i,
                    key.len(),
                    value,
                    expires_at,
                    first_block,
                    nblocks,
                    keep_stamp,
                );
                t.slot(i, F_STATE).store(USED, Ordering::Release);
                return Ok(());
            }
            let Some(i) = self.take_slot() else {
                return Err(CacheError::Full);
            };
            t.slot(i, F_STATE).store(WRITING, Ordering::Release);
            self.fill_key(i, kw, hash);
            self.fill_value(i, key.len(), value, expires_at, first_block, nblocks, false);
            let bucket = t.bucket(hash);
            t.slot(i, F_NEXT)
                .store(bucket.load(Ordering::Relaxed), Ordering::Relaxed);
            t.slot(i, F_STATE).store(USED, Ordering::Release);
            bucket.store(i as u64 + 1, Ordering::Release);
            self.head().count.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })();
        self.end();
        result
    }

    /// Write the key of a slot being filled (an update keeps the key it has).
    fn fill_key(&self, i: usize, kw: &[u64], hash: u64) {
        let t = self.t;
        for (k, &w) in kw.iter().enumerate() {
            t.key_word(i, k).store(w, Ordering::Relaxed);
        }
        t.slot(i, F_HASH).store(hash, Ordering::Relaxed);
    }

    /// Write the value, its length and expiry (and blocks) of a slot being filled.
    #[allow(clippy::too_many_arguments)]
    fn fill_value(
        &self,
        i: usize,
        key_len: usize,
        value: &[u8],
        expires_at: u64,
        first_block: usize,
        nblocks: usize,
        keep_stamp: bool,
    ) {
        let t = self.t;
        t.slot(i, F_LENS).store(
            key_len as u64 | (value.len() as u64) << 32,
            Ordering::Relaxed,
        );
        t.slot(i, F_EXPIRES).store(expires_at, Ordering::Relaxed);
        if t.geo.bitmap {
            self.mark_blocks(first_block, nblocks, true);
            t.slot(i, F_BLOCKS).store(
                first_block as u64 | (nblocks as u64) << 32,
                Ordering::Relaxed,
            );
        }
        self.write_value(i, value, first_block);
        // Stamps order evictions, so only caches that evict by age keep them.
        if t.policy.purge_lru && (!keep_stamp || t.slot(i, F_STAMP).load(Ordering::Relaxed) == 0) {
            let stamp = self.head().stats.clock.fetch_add(1, Ordering::Relaxed);
            t.slot(i, F_STAMP).store(stamp, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
