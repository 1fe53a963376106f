//! `cache2` (and legacy `cache`) specifications: the keys uWSGI accepts, parsed into a
//! [`CacheSpec`] the cache subsystem builds its tables from.

use std::path::PathBuf;

/// One cache, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    /// `name` (required, unique).
    pub name: String,
    /// `items` / `max_items` / `maxitems`: every one usable (not N−1).
    pub items: u64,
    /// `blocksize` (default 65536): the largest value, without `bitmap`.
    pub blocksize: u64,
    /// `blocks` (default: `items`).
    pub blocks: u64,
    /// `keysize` / `key_size` (default 2048, < 65536).
    pub keysize: u64,
    /// `hashsize` / `hash_size` (default 65536).
    pub hashsize: u64,
    /// `hash=murmur2` (else `djb33x`).
    pub murmur2: bool,
    /// `bitmap`: values take contiguous blocks (largest value: blocksize × blocks).
    pub bitmap: bool,
    /// `purge_lru` / `lru`.
    pub purge_lru: bool,
    /// `math_initial` (default 0).
    pub math_initial: i64,
    /// `ignore_full`: do not log when full.
    pub ignore_full: bool,
    /// `sweep_on_full`.
    pub sweep_on_full: bool,
    /// `clear_on_full`.
    pub clear_on_full: bool,
    /// `no_expire`: the sweeper skips this cache (expired items are still never returned).
    pub no_expire: bool,
    /// `store`: the file the cache is saved to and restored from.
    pub store: Option<PathBuf>,
    /// `store_sync` / `storesync`: seconds between saves (0: only at stop).
    pub store_sync: u64,
    /// `store_delete` / `storedelete`: a store file that does not fit this cache is
    /// deleted instead of stopping the start.
    pub store_delete: bool,
}

impl CacheSpec {
    /// A cache `name` of `items` items with every other key at its default.
    pub fn new(name: &str, items: u64) -> CacheSpec {
        CacheSpec {
            name: name.to_string(),
            items,
            blocksize: 65536,
            blocks: items,
            keysize: 2048,
            hashsize: 65536,
            murmur2: false,
            bitmap: false,
            purge_lru: false,
            math_initial: 0,
            ignore_full: false,
            sweep_on_full: false,
            clear_on_full: false,
            no_expire: false,
            store: None,
            store_sync: 0,
            store_delete: false,
        }
    }
}

/// Split `a=1,b=2` on unescaped commas; `\,` and `\\` are literal. A bare key is `key=""`.
fn pairs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars();
    let mut items = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' => items.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    items.push(cur);
    for item in items {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        match item.split_once('=') {
            Some((k, v)) => out.push((k.trim().to_string(), v.trim().to_string())),
            None => out.push((item.to_string(), String::new())),
        }
    }
    out
}

fn number(key: &str, v: &str, min: u64, max: u64) -> Result<u64, String> {
    let n = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    };
    n.filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{key} to be a number from {min} to {max}, not '{v}'"))
}

fn flag(v: &str) -> bool {
    !matches!(
        v.to_ascii_lowercase().as_str(),
        "0" | "false" | "off" | "no"
    )
}

/// Parse one `cache2` value. Errors name the key at fault and read after "expected".
pub fn parse_cache2(text: &str) -> Result<CacheSpec, String> {
    let kv = pairs(text);
    let get = |names: &[&str]| {
        kv.iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    };
    let name = get(&["name"])
        .filter(|n| !n.is_empty())
        .ok_or("a name=NAME key (every cache has one)")?;
    let items = number(
        "items",
        get(&["items", "max_items", "maxitems"]).ok_or("an items=N key (every cache has one)")?,
        1,
        u64::from(u32::MAX) - 2,
    )?;
    let mut spec = CacheSpec::new(name, items);
    for (k, v) in &kv {
        let v = v.as_str();
        match k.as_str() {
            "name" | "items" | "max_items" | "maxitems" => {}
            "blocksize" => spec.blocksize = number(k, v, 1, 1 << 30)?,
            "blocks" => spec.blocks = number(k, v, 1, u64::from(u32::MAX) - 2)?,
            "keysize" | "key_size" => spec.keysize = number(k, v, 1, 65535)?,
            "hashsize" | "hash_size" => spec.hashsize = number(k, v, 1, 1 << 28)?,
            "hash" => {
                spec.murmur2 = match v {
                    "djb33x" => false,
                    "murmur2" => true,
                    _ => return Err(format!("hash=djb33x or hash=murmur2, not '{v}'")),
                }
            }
            "bitmap" => spec.bitmap = flag(v),
            "purge_lru" | "lru" => spec.purge_lru = flag(v),
            "math_initial" => {
                spec.math_initial = v
                    .parse()
                    .map_err(|_| format!("math_initial to be an integer, not '{v}'"))?
            }
            "ignore_full" => spec.ignore_full = flag(v),
            "sweep_on_full" => spec.sweep_on_full = v.is_empty() || number(k, v, 0, u64::MAX)? > 0,
            "clear_on_full" => spec.clear_on_full = flag(v),
            // Expiry is always checked on read here, so lazy_expire is what every cache does.
            "lazy_expire" | "lazy" | "lastmod" => {}
            "no_expire" => spec.no_expire = flag(v),
            "store" => spec.store = Some(PathBuf::from(v)),
            "store_sync" | "storesync" => spec.store_sync = number(k, v, 0, 1 << 32)?,
            "store_delete" | "storedelete" => spec.store_delete = flag(v),
            "node" | "nodes" | "udp" | "udp_server" | "udp_servers" | "udpserver"
            | "udpservers" | "sync" => {
                return Err(format!(
                    "no '{k}' key: cache replication and sync are not implemented yet"
                ))
            }
            other => return Err(format!("cache2 keys only, and '{other}' is none")),
        }
    }
    if spec.blocks < spec.items {
        spec.blocks = if get(&["blocks"]).is_some() && !spec.bitmap {
            return Err("blocks to be at least items".to_string());
        } else {
            spec.blocks.max(spec.items)
        };
    }
    if get(&["blocks"]).is_none() {
        spec.blocks = spec.items;
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_defaults() {
        let s = parse_cache2("name=mycache,items=100").unwrap();
        assert_eq!(s, CacheSpec::new("mycache", 100));
        let s = parse_cache2(
            "name=c, maxitems=10, blocksize=128, blocks=40, bitmap=1, key_size=64, \
             hash=murmur2, hash_size=31, purge_lru=1, math_initial=5, ignore_full=1, \
             sweep_on_full=2, clear_on_full=1, no_expire=1, store=/tmp/c.store, \
             store_sync=3, store_delete=1, lazy_expire=1",
        )
        .unwrap();
        assert_eq!(
            (
                s.items,
                s.blocksize,
                s.blocks,
                s.bitmap,
                s.keysize,
                s.murmur2,
                s.hashsize
            ),
            (10, 128, 40, true, 64, true, 31)
        );
        assert!(s.purge_lru && s.ignore_full && s.sweep_on_full && s.clear_on_full);
        assert!(s.no_expire && s.store_delete);
        assert_eq!((s.math_initial, s.store_sync), (5, 3));
        assert_eq!(
            s.store.as_deref(),
            Some(std::path::Path::new("/tmp/c.store"))
        );
        assert!(parse_cache2("name=a\\,b,items=2").unwrap().name == "a,b");
    }

    #[test]
    fn errors_name_the_key() {
        for (text, needle) in [
            ("items=10", "a name=NAME key"),
            ("name=a", "an items=N key"),
            ("name=a,items=0", "items to be a number"),
            ("name=a,items=10,max-items=4", "'max-items' is none"),
            (
                "name=a,items=10,hash=sha1",
                "hash=djb33x or hash=murmur2, not 'sha1'",
            ),
            ("name=a,items=10,keysize=65536", "keysize to be a number"),
            ("name=a,items=10,blocks=5", "blocks to be at least items"),
            ("name=a,items=10,nodes=1.2.3.4:5", "not implemented yet"),
        ] {
            let e = parse_cache2(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
