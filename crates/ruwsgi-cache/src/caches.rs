//! The caches of one instance, by name: what the `cache2`/`cache` options configured.

use std::io;
use std::path::PathBuf;

use ruwsgi_config::CacheSpec;

use crate::table::{Geometry, MathOp, Policy, Table};
use crate::{CacheBackend, CacheError, Item};

/// One configured cache.
#[derive(Debug)]
pub struct Cache {
    /// Its name.
    pub name: String,
    /// Its table.
    pub table: Table,
    /// Skipped by the sweeper.
    pub no_expire: bool,
    /// Do not log when full.
    pub ignore_full: bool,
    /// Saved to and restored from this file.
    pub store: Option<PathBuf>,
    /// Seconds between saves (0: at stop only).
    pub store_sync: u64,
    /// A store file that does not fit is deleted rather than refused.
    pub store_delete: bool,
}

impl Cache {
    /// [`Table::store`], logging (unless `ignore_full`) when the cache is full.
    pub fn store(
        &self,
        key: &[u8],
        value: &[u8],
        expires: u64,
        overwrite: bool,
    ) -> Result<(), CacheError> {
        let r = self.table.store(key, value, expires, overwrite);
        self.note_full(&r);
        r
    }

    /// [`Table::math`], logging (unless `ignore_full`) when the cache is full.
    pub fn math(
        &self,
        key: &[u8],
        op: MathOp,
        operand: i64,
        expires: u64,
    ) -> Result<i64, CacheError> {
        let r = self.table.math(key, op, operand, expires);
        self.note_full(&r);
        r
    }

    fn note_full<T>(&self, r: &Result<T, CacheError>) {
        if matches!(r, Err(CacheError::Full)) && !self.ignore_full {
            ruwsgi_sys::log_line(&format!(
                "ruwsgi: cache '{}' is full: an item could not be stored",
                self.name
            ));
        }
    }
}

/// Every cache of the instance; the first is the default.
#[derive(Debug, Default)]
pub struct Caches {
    list: Vec<Cache>,
    /// The largest value any of them holds.
    max_value: usize,
}

impl Caches {
    /// Map a table for each spec (before any fork). Errors name the cache.
    pub fn new(specs: &[CacheSpec]) -> io::Result<Caches> {
        Self::build(specs, Table::new)
    }

    /// The same on the heap (tests).
    pub fn on_heap(specs: &[CacheSpec]) -> io::Result<Caches> {
        Self::build(specs, Table::on_heap)
    }

    fn build(
        specs: &[CacheSpec],
        make: fn(Geometry, Policy) -> io::Result<Table>,
    ) -> io::Result<Caches> {
        let mut list: Vec<Cache> = Vec::with_capacity(specs.len());
        for s in specs {
            if list.iter().any(|c| c.name == s.name) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cache '{}' is defined twice", s.name),
                ));
            }
            let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
            let geo = Geometry {
                items: as_usize(s.items),
                blocksize: as_usize(s.blocksize),
                blocks: as_usize(s.blocks.max(s.items)),
                keysize: as_usize(s.keysize),
                hashsize: as_usize(s.hashsize),
                bitmap: s.bitmap,
            };
            let policy = Policy {
                purge_lru: s.purge_lru,
                sweep_on_full: s.sweep_on_full,
                clear_on_full: s.clear_on_full,
                math_initial: s.math_initial,
                murmur2: s.murmur2,
            };
            let table = make(geo, policy)
                .map_err(|e| io::Error::new(e.kind(), format!("cache '{}': {e}", s.name)))?;
            list.push(Cache {
                name: s.name.clone(),
                table,
                no_expire: s.no_expire,
                ignore_full: s.ignore_full,
                store: s.store.clone(),
                store_sync: s.store_sync,
                store_delete: s.store_delete,
            });
        }
        let max_value = list.iter().map(|c| c.table.max_value()).max().unwrap_or(0);
        Ok(Caches { list, max_value })
    }

    /// The largest value any cache holds (a remote `set` announcing more is refused before
    /// its value is read).
    pub fn max_value(&self) -> usize {
        self.max_value
    }

    /// Every cache, the default first.
    pub fn list(&self) -> &[Cache] {
        &self.list
    }

    /// True when no cache is configured.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The cache called `name` (`None` or empty: the default one).
    pub fn find(&self, name: Option<&str>) -> Result<&Cache, CacheError> {
        self.position(name).map(|i| &self.list[i])
    }

    /// Where the cache called `name` is in [`list`](Self::list), for callers that resolve
    /// a name once and use it many times.
    pub fn position(&self, name: Option<&str>) -> Result<usize, CacheError> {
        match name.filter(|n| !n.is_empty()) {
            None if !self.list.is_empty() => Ok(0),
            None => Err(CacheError::UnknownCache),
            Some(n) => self
                .list
                .iter()
                .position(|c| c.name == n)
                .ok_or(CacheError::UnknownCache),
        }
    }

    /// A math operation (see [`Table::math`]).
    pub fn math(
        &self,
        cache: Option<&str>,
        key: &[u8],
        op: MathOp,
        operand: i64,
        expires: u64,
    ) -> Result<i64, CacheError> {
        self.find(cache)?.math(key, op, operand, expires)
    }

    /// [`Table::get_into`] on a cache by name.
    pub fn get_into(
        &self,
        cache: Option<&str>,
        key: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<Option<u64>, CacheError> {
        self.find(cache)?.table.get_into(key, buf)
    }

    /// Every live key of a cache.
    pub fn keys(&self, cache: Option<&str>) -> Result<Vec<Vec<u8>>, CacheError> {
        self.find(cache)?.table.keys()
    }

    /// Delete the expired items of every cache that is swept; how many per cache.
    pub fn sweep(&self, now: u64) -> Vec<(&str, usize)> {
        self.list
            .iter()
            .filter(|c| !c.no_expire)
            .map(|c| (c.name.as_str(), c.table.sweep(now)))
            .collect()
    }
}

impl CacheBackend for Caches {
    fn get(&self, cache: Option<&str>, key: &[u8]) -> Result<Option<Item>, CacheError> {
        self.find(cache)?.table.get(key)
    }

    fn exists(&self, cache: Option<&str>, key: &[u8]) -> Result<bool, CacheError> {
        self.find(cache)?.table.exists(key)
    }

    fn store(
        &self,
        cache: Option<&str>,
        key: &[u8],
        value: &[u8],
        expires: u64,
        overwrite: bool,
    ) -> Result<(), CacheError> {
        self.find(cache)?.store(key, value, expires, overwrite)
    }

    fn delete(&self, cache: Option<&str>, key: &[u8]) -> Result<bool, CacheError> {
        self.find(cache)?.table.delete(key)
    }

    fn clear(&self, cache: Option<&str>) -> Result<(), CacheError> {
        self.find(cache)?.table.clear()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, items: u64) -> CacheSpec {
        let mut s = CacheSpec::new(name, items);
        s.blocksize = 64;
        s.keysize = 32;
        s.hashsize = 16;
        s
    }

    #[test]
    fn names_and_the_default() {
        let c = Caches::on_heap(&[spec("first", 4), spec("second", 4)]).unwrap();
        c.store(None, b"k", b"default", 0, false).unwrap();
        c.store(Some("second"), b"k", b"other", 0, false).unwrap();
        let get = |n| c.get(n, b"k").unwrap().unwrap().value;
        assert_eq!(get(None), b"default");
        assert_eq!(get(Some("")), b"default");
        assert_eq!(get(Some("first")), b"default");
        assert_eq!(get(Some("second")), b"other");
        assert_eq!(c.get(Some("nope"), b"k"), Err(CacheError::UnknownCache));
        assert_eq!(c.math(Some("second"), b"n", MathOp::Add, 2, 0), Ok(2));
        assert_eq!(c.keys(Some("second")).unwrap().len(), 2);
        assert!(Caches::on_heap(&[spec("a", 1), spec("a", 1)]).is_err());
        assert!(Caches::on_heap(&[]).unwrap().find(None).is_err());
    }
}
