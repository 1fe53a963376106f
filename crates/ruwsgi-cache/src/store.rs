//! Saving a cache to a file and restoring it (`store` / `cache-store`).
//!
//! The master saves each stored cache every `store_sync` seconds when it changed, and once
//! more before it stops or re-executes itself; the next start restores it. A save writes a
//! new file beside the old one, syncs it to disk and renames it over the old one, so the
//! file on disk is always a whole snapshot: a crash during a save leaves the previous one.
//!
//! The file holds items, not a memory image: a snapshot restores into a cache of any shape
//! (items that no longer fit are skipped and counted). Items already expired are not
//! restored. Format: the line `ruwsgi cache store 1\n`, then per item
//! `key_len:u32 LE, key, value_len:u32 LE, value, expires_at:u64 LE` (unix seconds, 0 =
//! never), then the marker `0xFFFFFFFF` closing a complete file.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::table::Table;

const MAGIC: &[u8] = b"ruwsgi cache store 1\n";
const END: u32 = u32::MAX;

/// Write `table`'s items to `path` atomically; returns how many.
pub fn save(table: &Table, path: &Path) -> io::Result<usize> {
    let entries = table.entries().map_err(io::Error::other)?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut out = BufWriter::new(file);
        out.write_all(MAGIC)?;
        for (key, item) in &entries {
            out.write_all(&(key.len() as u32).to_le_bytes())?;
            out.write_all(key)?;
            out.write_all(&(item.value.len() as u32).to_le_bytes())?;
            out.write_all(&item.value)?;
            out.write_all(&item.expires_at.to_le_bytes())?;
        }
        out.write_all(&END.to_le_bytes())?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(entries.len())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What a restore did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restored {
    /// Items put back.
    pub items: usize,
    /// Items that had expired meanwhile.
    pub expired: usize,
    /// Items that no longer fit the cache (too large, key too long, cache full).
    pub skipped: usize,
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn invalid(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is not a complete cache store ({why})", path.display()),
    )
}

/// Put the items saved in `path` back into `table`. A missing file restores nothing; a
/// file that is not a complete store is an error (and restores nothing).
pub fn load(table: &Table, path: &Path) -> io::Result<Restored> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Restored::default()),
        Err(e) => return Err(e),
    };
    let max = table.max_value().max(table.geometry().keysize) as u32;
    let mut r = BufReader::new(file);
    let mut magic = vec![0u8; MAGIC.len()];
    r.read_exact(&mut magic)
        .map_err(|_| invalid(path, "no header"))?;
    if magic != MAGIC {
        return Err(invalid(path, "wrong header"));
    }
    // Read everything first: a truncated file restores nothing.
    let mut items = Vec::new();
    loop {
        let klen = read_u32(&mut r).map_err(|_| invalid(path, "truncated"))?;
        if klen == END {
            break;
        }
        let too_big = |n: u32| n > max.max(1 << 30);
        if too_big(klen) {
            return Err(invalid(path, "key length out of range"));
        }
        let mut key = vec![0u8; klen as usize];
        r.read_exact(&mut key)
            .map_err(|_| invalid(path, "truncated"))?;
        let vlen = read_u32(&mut r).map_err(|_| invalid(path, "truncated"))?;
        if too_big(vlen) {
            return Err(invalid(path, "value length out of range"));
        }
        let mut value = vec![0u8; vlen as usize];
        r.read_exact(&mut value)
            .map_err(|_| invalid(path, "truncated"))?;
        let mut exp = [0u8; 8];
        r.read_exact(&mut exp)
            .map_err(|_| invalid(path, "truncated"))?;
        items.push((key, value, u64::from_le_bytes(exp)));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut done = Restored::default();
    for (key, value, expires_at) in items {
        if expires_at != 0 && expires_at < now {
            done.expired += 1;
        } else if table.restore(&key, &value, expires_at).is_ok() {
            done.items += 1;
        } else {
            done.skipped += 1;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Geometry, Policy};

    fn table(items: usize) -> Table {
        let g = Geometry {
            items,
            blocksize: 64,
            blocks: items,
            keysize: 16,
            hashsize: 8,
            bitmap: false,
        };
        Table::on_heap(g, Policy::default()).unwrap()
    }

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "ruwsgi-store-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn save_and_restore() {
        let d = dir();
        let path = d.join("c.store");
        let t = table(8);
        t.store(b"a", b"one", 0, false).unwrap();
        t.store(b"b", &[7; 64], 100, false).unwrap();
        assert_eq!(save(&t, &path).unwrap(), 2);
        let t2 = table(8);
        assert_eq!(load(&t2, &path).unwrap().items, 2);
        assert_eq!(t2.get(b"a").unwrap().unwrap().value, b"one");
        let b = t2.get(b"b").unwrap().unwrap();
        assert_eq!(b.value, [7; 64]);
        assert_eq!(b.expires_at, t.get(b"b").unwrap().unwrap().expires_at);
        // into a smaller cache: what does not fit is skipped
        let t3 = table(1);
        let r = load(&t3, &path).unwrap();
        assert_eq!((r.items, r.skipped), (1, 1));
        // no file: nothing
        assert_eq!(load(&t3, &d.join("none")).unwrap(), Restored::default());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn broken_files_restore_nothing() {
        let d = dir();
        let path = d.join("c.store");
        let t = table(8);
        t.store(b"a", b"one", 0, false).unwrap();
        save(&t, &path).unwrap();
        let full = fs::read(&path).unwrap();
        for cut in [0, 5, MAGIC.len() + 3, full.len() - 1] {
            fs::write(&path, &full[..cut]).unwrap();
            let t2 = table(8);
            assert!(load(&t2, &path).is_err(), "cut at {cut}");
            assert_eq!(t2.stats().items, 0);
        }
        fs::write(&path, b"garbage that is long enough to be read").unwrap();
        assert!(load(&table(8), &path).is_err());
        let _ = fs::remove_dir_all(&d);
    }
}
