use std::sync::Arc;

use super::*;

fn geo(items: usize) -> Geometry {
    Geometry {
        items,
        blocksize: 64,
        blocks: items,
        keysize: 32,
        hashsize: 7,
        bitmap: false,
    }
}

fn table(items: usize) -> Table {
    Table::on_heap(geo(items), Policy::default()).unwrap()
}

fn value(t: &Table, key: &[u8]) -> Option<Vec<u8>> {
    t.get(key).unwrap().map(|i| i.value)
}

#[test]
fn set_get_update_delete() {
    let t = table(8);
    assert_eq!(value(&t, b"a"), None);
    t.store(b"a", b"one", 0, false).unwrap();
    assert_eq!(value(&t, b"a").as_deref(), Some(&b"one"[..]));
    // set never overwrites, update does
    assert_eq!(t.store(b"a", b"two", 0, false), Err(CacheError::Exists));
    t.store(b"a", b"three", 0, true).unwrap();
    assert_eq!(value(&t, b"a").as_deref(), Some(&b"three"[..]));
    assert!(t.exists(b"a").unwrap());
    assert_eq!(t.delete(b"a"), Ok(true));
    assert_eq!(t.delete(b"a"), Ok(false));
    assert!(!t.exists(b"a").unwrap());
    assert_eq!(t.stats().items, 0);
}

#[test]
fn limits() {
    let t = table(4);
    assert_eq!(t.store(b"", b"v", 0, false), Err(CacheError::BadKey));
    assert_eq!(
        t.store(&[b'k'; 33], b"v", 0, false),
        Err(CacheError::BadKey)
    );
    t.store(&[b'k'; 32], b"v", 0, false).unwrap();
    assert_eq!(t.store(b"k", b"", 0, false), Err(CacheError::EmptyValue));
    assert_eq!(t.store(b"k", &[1; 65], 0, false), Err(CacheError::TooLarge));
    t.store(b"k", &[1; 64], 0, false).unwrap();
    assert_eq!(value(&t, b"k").unwrap().len(), 64);
}

#[test]
fn items_n_stores_n_and_then_is_full() {
    let t = table(3);
    for k in [&b"a"[..], b"b", b"c"] {
        t.store(k, b"v", 0, false).unwrap();
    }
    assert_eq!(t.store(b"d", b"v", 0, false), Err(CacheError::Full));
    assert_eq!(t.stats().full, 1);
    // a freed slot is reused
    t.delete(b"b").unwrap();
    t.store(b"d", b"v", 0, false).unwrap();
    let mut keys = t.keys().unwrap();
    keys.sort();
    assert_eq!(keys, [b"a".to_vec(), b"c".to_vec(), b"d".to_vec()]);
}

#[test]
fn lru_evicts_the_least_recently_used() {
    let policy = Policy {
        purge_lru: true,
        ..Policy::default()
    };
    let t = Table::on_heap(geo(3), policy).unwrap();
    for k in [&b"a"[..], b"b", b"c"] {
        t.store(k, b"v", 0, false).unwrap();
    }
    value(&t, b"a");
    t.store(b"d", b"v", 0, false).unwrap();
    assert!(t.exists(b"a").unwrap() && t.exists(b"c").unwrap() && t.exists(b"d").unwrap());
    assert!(!t.exists(b"b").unwrap());
}

#[test]
fn expiry_is_enforced_on_read_and_swept() {
    let t = table(4);
    t.store(b"old", b"v", 1, false).unwrap();
    t.store(b"forever", b"v", 0, false).unwrap();
    let item = t.get(b"old").unwrap().unwrap();
    assert!(item.expires_at > now_unix());
    // as seen 2 s later
    assert_eq!(t.sweep(now_unix() + 2), 1);
    assert_eq!(value(&t, b"old"), None);
    assert!(t.exists(b"forever").unwrap());
    // an expired item is a miss before any sweep, and set may replace it
    let t = table(4);
    t.store(b"gone", b"v", 1, false).unwrap();
    let slot = t
        .find(
            b"gone",
            &[u64::from_ne_bytes(*b"gone\0\0\0\0")],
            djb33x(b"gone"),
        )
        .unwrap();
    t.slot(slot, F_EXPIRES)
        .store(now_unix() - 1, Ordering::Relaxed);
    assert_eq!(value(&t, b"gone"), None);
    t.store(b"gone", b"new", 0, false).unwrap();
    assert_eq!(value(&t, b"gone").as_deref(), Some(&b"new"[..]));
}

#[test]
fn math_operations() {
    let policy = Policy {
        math_initial: 10,
        ..Policy::default()
    };
    let t = Table::on_heap(geo(4), policy).unwrap();
    assert_eq!(t.math(b"n", MathOp::Add, 1, 0), Ok(11));
    assert_eq!(t.math(b"n", MathOp::Mul, 3, 0), Ok(33));
    assert_eq!(t.math(b"n", MathOp::Sub, 3, 0), Ok(30));
    assert_eq!(t.math(b"n", MathOp::Div, 4, 0), Ok(7));
    assert_eq!(t.math(b"n", MathOp::Div, 0, 0), Ok(0));
    assert_eq!(value(&t, b"n"), Some(0i64.to_ne_bytes().to_vec()));
    // an existing value's first 8 bytes are the number; it becomes 8 bytes long
    t.store(b"s", &[5, 0, 0, 0, 0, 0, 0, 0, 99, 99], 0, false)
        .unwrap();
    assert_eq!(t.math(b"s", MathOp::Add, 1, 0), Ok(6));
    assert_eq!(value(&t, b"s").unwrap().len(), 8);
    // expiry: a new counter gets it, an existing one keeps its own
    t.math(b"e", MathOp::Add, 1, 100).unwrap();
    let exp = t.get(b"e").unwrap().unwrap().expires_at;
    assert!(exp > now_unix());
    t.math(b"e", MathOp::Add, 1, 0).unwrap();
    assert_eq!(t.get(b"e").unwrap().unwrap().expires_at, exp);
}

#[test]
fn bitmap_values_span_blocks() {
    let g = Geometry {
        items: 4,
        blocksize: 16,
        blocks: 8,
        keysize: 16,
        hashsize: 4,
        bitmap: true,
    };
    let t = Table::on_heap(g, Policy::default()).unwrap();
    assert_eq!(t.max_value(), 128);
    t.store(b"a", &[1; 40], 0, false).unwrap(); // 3 blocks
    t.store(b"b", &[2; 64], 0, false).unwrap(); // 4 blocks
    assert_eq!(t.store(b"c", &[3; 32], 0, false), Err(CacheError::Full)); // 1 block left
    t.store(b"c", &[3; 16], 0, false).unwrap();
    t.delete(b"a").unwrap();
    t.store(b"d", &[4; 48], 0, false).unwrap();
    assert_eq!(value(&t, b"b").unwrap(), [2; 64]);
    assert_eq!(value(&t, b"d").unwrap(), [4; 48]);
    // an update needs its new blocks before the old ones are freed
    assert_eq!(t.store(b"b", &[5; 65], 0, true), Err(CacheError::Full));
    assert_eq!(value(&t, b"b").unwrap(), [2; 64]);
}

#[test]
fn clear_empties_everything() {
    let t = table(4);
    t.store(b"a", b"v", 0, false).unwrap();
    t.store(b"b", b"v", 0, false).unwrap();
    t.clear().unwrap();
    assert_eq!(t.keys().unwrap().len(), 0);
    for k in [&b"a"[..], b"b", b"c", b"d"] {
        t.store(k, b"v", 0, false).unwrap();
    }
}

#[test]
fn murmur2_keys_work_too() {
    let policy = Policy {
        murmur2: true,
        ..Policy::default()
    };
    let t = Table::on_heap(geo(4), policy).unwrap();
    t.store(b"key", b"v", 0, false).unwrap();
    assert!(t.exists(b"key").unwrap());
    assert_ne!(murmur2(b"key"), djb33x(b"key"));
}

/// A writer that dies between marking a slot and finishing it: the next writer rebuilds,
/// the other items survive, the half-written one is gone.
#[test]
fn a_writer_killed_mid_write_leaves_a_consistent_cache() {
    let t = Arc::new(table(8));
    for k in [&b"a"[..], b"b", b"c"] {
        t.store(k, k, 0, false).unwrap();
    }
    let t2 = t.clone();
    std::thread::spawn(move || {
        let w = t2.write_lock().unwrap();
        w.begin();
        let i = t2
            .find(
                b"b",
                &[u64::from_ne_bytes(*b"b\0\0\0\0\0\0\0")],
                djb33x(b"b"),
            )
            .unwrap();
        t2.slot(i, F_STATE).store(WRITING, Ordering::Release);
        t2.slot(i, F_LENS).store(1 | 3 << 32, Ordering::Relaxed);
        // the thread ends holding the lock, the sequence odd and the slot half-written
        std::mem::forget(w);
    })
    .join()
    .unwrap();
    // a reader gives up on the odd sequence, takes the lock, and the cache is repaired
    assert_eq!(value(&t, b"a").as_deref(), Some(&b"a"[..]));
    assert_eq!(value(&t, b"b"), None);
    assert_eq!(value(&t, b"c").as_deref(), Some(&b"c"[..]));
    assert_eq!(t.stats().items, 2);
    t.store(b"b", b"again", 0, false).unwrap();
    let mut keys = t.keys().unwrap();
    keys.sort();
    assert_eq!(keys, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
}

/// Garbage in the slots (a corrupted table) is dropped by the rebuild, never followed.
#[test]
fn a_rebuild_drops_unsound_slots() {
    let t = table(4);
    t.store(b"ok", b"v", 0, false).unwrap();
    let bad = 3;
    t.slot(bad, F_STATE).store(USED, Ordering::Relaxed);
    t.slot(bad, F_LENS).store(u64::MAX, Ordering::Relaxed);
    t.slot(bad, F_NEXT).store(bad as u64 + 1, Ordering::Relaxed); // a loop
    t.bucket(0).store(bad as u64 + 1, Ordering::Relaxed);
    // lookups stay bounded even over the loop
    assert_eq!(value(&t, b"zz"), None);
    t.write_lock().unwrap().rebuild();
    assert_eq!(t.stats().items, 1);
    assert_eq!(value(&t, b"ok").as_deref(), Some(&b"v"[..]));
}

/// Threads hammering the same keys never see a torn or mixed value.
#[test]
fn concurrent_readers_and_writers_never_see_torn_values() {
    let t = Arc::new(
        Table::on_heap(
            Geometry {
                items: 16,
                blocksize: 256,
                blocks: 16,
                keysize: 16,
                hashsize: 16,
                bitmap: false,
            },
            Policy::default(),
        )
        .unwrap(),
    );
    let keys: Vec<Vec<u8>> = (0..4).map(|i| format!("key{i}").into_bytes()).collect();
    let writers: Vec<_> = (0..2u8)
        .map(|w| {
            let t = t.clone();
            let keys = keys.clone();
            std::thread::spawn(move || {
                for n in 0..3000usize {
                    let k = &keys[n % keys.len()];
                    // every byte of a value is the same: a mix of two writes shows
                    let fill = (n % 250) as u8 + w;
                    let len = 8 + (n * 7) % 240;
                    t.store(k, &vec![fill; len], 0, true).unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let t = t.clone();
            let keys = keys.clone();
            std::thread::spawn(move || {
                let mut seen = 0;
                for n in 0..6000usize {
                    if let Some(v) = t.get(&keys[n % keys.len()]).unwrap() {
                        let first = v.value[0];
                        assert!(
                            v.value.iter().all(|&b| b == first),
                            "torn value {:?}",
                            v.value
                        );
                        seen += 1;
                    }
                }
                seen
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let seen: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(seen > 0);
    assert_eq!(t.stats().items, 4);
}

/// Keys longer than the slot's inline part spill into the overflow area: keys that share
/// their first 64 bytes stay distinct, survive a rebuild and come back whole from `keys`.
#[test]
fn long_keys_use_the_overflow_area() {
    let t = Table::on_heap(
        Geometry {
            keysize: 300,
            hashsize: 1, // every key in one bucket: each lookup compares whole keys
            ..geo(16)
        },
        Policy::default(),
    )
    .unwrap();
    let prefix = [b'k'; 64];
    let mut keys: Vec<Vec<u8>> = vec![b"short".to_vec(), prefix[..63].to_vec(), prefix.to_vec()];
    for tail in [&b"a"[..], b"b", &[b'x'; 236][..], &[b'y'; 236][..]] {
        keys.push([&prefix[..], tail].concat());
    }
    for (n, k) in keys.iter().enumerate() {
        t.store(k, format!("value {n}").as_bytes(), 0, false)
            .unwrap();
    }
    let check = |t: &Table| {
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(
                value(t, k),
                Some(format!("value {n}").into_bytes()),
                "key {n}"
            );
        }
        assert_eq!(value(t, &[&prefix[..], b"c"].concat()), None);
        let mut listed = t.keys().unwrap();
        listed.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(listed, want);
    };
    check(&t);
    t.write_lock().unwrap().rebuild();
    check(&t);
    assert_eq!(
        t.store(&[b'z'; 301], b"v", 0, false),
        Err(CacheError::BadKey)
    );
}

#[test]
fn a_sweep_that_removes_nothing_never_disturbs_readers() {
    let t = table(4);
    t.store(b"later", b"v", 100, false).unwrap();
    t.store(b"forever", b"v", 0, false).unwrap();
    let seq = |t: &Table| t.region.header().seq.load(Ordering::Relaxed);
    let before = seq(&t);
    // nothing expired: the sequence readers validate against is left alone
    assert_eq!(t.sweep(now_unix()), 0);
    assert_eq!(seq(&t), before);
    // a removal is one change: the sequence moves once, to the next even number
    assert_eq!(t.sweep(now_unix() + 200), 1);
    assert_eq!(seq(&t), (before | 1) + 1);
    assert_eq!(value(&t, b"later"), None);
    assert!(t.exists(b"forever").unwrap());
}
