//! Caches: named key/value stores shared by every process of an instance, and the same
//! operations on another node's caches over the uwsgi protocol (modifier1 111).
//!
//! # Layout
//! - [`CacheBackend`]: the operations every front end uses (the `uwsgi` module's
//!   `cache_*` functions, the 111 server), whatever stores the items. The shared-memory
//!   table is one backend; a later one (Redis) plugs in behind the same trait.
//! - [`CacheError`]: why an operation did not happen.
//! - [`caches`]: [`Caches`], the configured caches by name (the default first); the
//!   [`CacheBackend`] of the shared-memory caches.
//! - [`store`]: saving a cache to a file and restoring it (`store`, `cache-store`).
//! - [`table`]: [`Table`], one cache in shared memory (lock-free reads, crash-safe writes).

pub mod caches;
pub mod store;
pub mod table;

pub use caches::{Cache, Caches};
pub use table::{Geometry, MathOp, Policy, Stats, Table, ValueRef};

pub mod client;
pub mod server;

/// Why a cache operation did not happen. Front ends map every one of these to uWSGI's
/// "failure" (`None` in Python, no reply on the wire); the variant says why, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// No cache has this name.
    #[error("no such cache")]
    UnknownCache,
    /// The key is empty or longer than the cache's `keysize`.
    #[error("invalid key length")]
    BadKey,
    /// The value is empty (empty values cannot be stored).
    #[error("empty value")]
    EmptyValue,
    /// The value is larger than the cache's largest item.
    #[error("value too large")]
    TooLarge,
    /// No room left (and nothing could be evicted or swept).
    #[error("cache full")]
    Full,
    /// `set` of a key that exists (only `update` overwrites).
    #[error("key exists")]
    Exists,
    /// The cache's lock could not be taken.
    #[error("cache lock failed")]
    Lock,
}

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The value bytes.
    pub value: Vec<u8>,
    /// When it expires, in unix seconds (0: never).
    pub expires_at: u64,
}

/// The operations on the caches of one instance. `cache` is a cache name; `None` or an
/// empty name is the default cache (the first one configured).
pub trait CacheBackend: Send + Sync {
    /// The item under `key`, if present and not expired.
    fn get(&self, cache: Option<&str>, key: &[u8]) -> Result<Option<Item>, CacheError>;
    /// Whether `key` is present (and not expired).
    fn exists(&self, cache: Option<&str>, key: &[u8]) -> Result<bool, CacheError>;
    /// Store `value` under `key`, expiring `expires` seconds from now (0: never). With
    /// `overwrite` false (`set`) an existing key is refused with [`CacheError::Exists`];
    /// with true (`update`) it is replaced, expiry included.
    fn store(
        &self,
        cache: Option<&str>,
        key: &[u8],
        value: &[u8],
        expires: u64,
        overwrite: bool,
    ) -> Result<(), CacheError>;
    /// Remove `key`: true if it was there.
    fn delete(&self, cache: Option<&str>, key: &[u8]) -> Result<bool, CacheError>;
    /// Remove every item.
    fn clear(&self, cache: Option<&str>) -> Result<(), CacheError>;
}
