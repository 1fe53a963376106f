//! The function table of one process.
//!
//! Entries are kept in registration order (that is `rpc_list`'s order) in a vector searched
//! linearly: the table holds `rpc-max` (default 64) names at most, and a call compares names
//! while holding only a read lock, so concurrent calls never wait for each other.

use std::sync::{Arc, RwLock};

use ruwsgi_proto::rpc::MAX_NAME;

use crate::{Reply, RpcFunction};

/// Why a registration was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterError {
    /// The name is empty (or starts with a NUL byte).
    #[error("RPC function name is empty")]
    EmptyName,
    /// The name is 256 bytes or longer.
    #[error("RPC function name of {len} bytes is too long (max {MAX_NAME})")]
    NameTooLong {
        /// Its length.
        len: usize,
    },
    /// `rpc-max` functions are registered already.
    #[error("the RPC table is full ({max} functions, see rpc-max)")]
    Full {
        /// The table size.
        max: usize,
    },
    /// This kind of process may not register (mules and spoolers only call).
    #[error("only the master and the workers can register RPC functions")]
    NotAllowed,
    /// The host has no RPC subsystem.
    #[error("the RPC subsystem is not available")]
    Unavailable,
}

struct Entry {
    name: Box<[u8]>,
    argc: u8,
    function: Arc<dyn RpcFunction>,
}

/// One process's RPC functions.
pub struct Registry {
    max: usize,
    entries: RwLock<Vec<Entry>>,
}

/// Names compare as C strings: a NUL byte ends a name.
fn c_name(name: &[u8]) -> &[u8] {
    match name.iter().position(|&b| b == 0) {
        Some(end) => &name[..end],
        None => name,
    }
}

impl Registry {
    /// An empty table for at most `max` functions.
    pub fn new(max: usize) -> Registry {
        Registry {
            max,
            entries: RwLock::new(Vec::new()),
        }
    }

    /// How many functions the table can hold.
    pub fn capacity(&self) -> usize {
        self.max
    }

    /// Register `function` as `name` (re-registering a name replaces its function). `argc`
    /// is kept for the record; calls may pass any number of arguments.
    pub fn register(
        &self,
        name: &[u8],
        argc: u8,
        function: Arc<dyn RpcFunction>,
    ) -> Result<(), RegisterError> {
        let name = c_name(name);
        if name.is_empty() {
            return Err(RegisterError::EmptyName);
        }
        if name.len() > MAX_NAME {
            return Err(RegisterError::NameTooLong { len: name.len() });
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = entries.iter_mut().find(|e| *e.name == *name) {
            e.function = function;
            e.argc = argc;
            return Ok(());
        }
        if entries.len() >= self.max {
            return Err(RegisterError::Full { max: self.max });
        }
        entries.push(Entry {
            name: name.into(),
            argc,
            function,
        });
        Ok(())
    }

    /// The function registered as `name`.
    pub fn get(&self, name: &[u8]) -> Option<Arc<dyn RpcFunction>> {
        let name = c_name(name);
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|e| *e.name == *name)
            .map(|e| e.function.clone())
    }

    /// The registered names, in registration order, with their declared `argc`.
    pub fn list(&self) -> Vec<(Vec<u8>, u8)> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.iter().map(|e| (e.name.to_vec(), e.argc)).collect()
    }

    /// Call `name` in this process. The table lock is not held while the function runs, so
    /// a function may call others (or register).
    pub fn call(&self, name: &[u8], args: &[&[u8]]) -> Reply {
        match self.get(name) {
            Some(f) => match f.call(args) {
                Ok(Some(result)) if result.is_empty() => Reply::NoResult,
                Ok(Some(result)) => Reply::Result(result),
                Ok(None) => Reply::NoResult,
                Err(why) => Reply::Failed(why),
            },
            None => Reply::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(v: &'static [u8]) -> Arc<dyn RpcFunction> {
        Arc::new(move |_: &[&[u8]]| Ok(Some(v.to_vec())))
    }

    #[test]
    fn register_call_and_replace() {
        let r = Registry::new(64);
        r.register(b"hello", 0, constant(b"one")).unwrap();
        assert_eq!(r.call(b"hello", &[]), Reply::Result(b"one".to_vec()));
        r.register(b"hello", 2, constant(b"two")).unwrap();
        assert_eq!(r.call(b"hello", &[]), Reply::Result(b"two".to_vec()));
        assert_eq!(r.list(), [(b"hello".to_vec(), 2)]);
        assert_eq!(r.call(b"nope", &[]), Reply::NotFound);
    }

    #[test]
    fn arguments_reach_the_function() {
        let r = Registry::new(4);
        r.register(
            b"join",
            0,
            Arc::new(|args: &[&[u8]]| Ok(Some(args.join(&b","[..])))),
        )
        .unwrap();
        assert_eq!(
            r.call(b"join", &[b"a", b"", b"c"]),
            Reply::Result(b"a,,c".to_vec())
        );
    }

    #[test]
    fn empty_results_and_failures() {
        let r = Registry::new(4);
        r.register(b"empty", 0, constant(b"")).unwrap();
        r.register(b"none", 0, Arc::new(|_: &[&[u8]]| Ok(None)))
            .unwrap();
        r.register(b"bad", 0, Arc::new(|_: &[&[u8]]| Err("boom".to_string())))
            .unwrap();
        assert_eq!(r.call(b"empty", &[]), Reply::NoResult);
        assert_eq!(r.call(b"none", &[]), Reply::NoResult);
        assert_eq!(r.call(b"bad", &[]), Reply::Failed("boom".into()));
    }

    #[test]
    fn limits() {
        let r = Registry::new(2);
        assert_eq!(
            r.register(b"", 0, constant(b"x")),
            Err(RegisterError::EmptyName)
        );
        assert_eq!(
            r.register(&[b'n'; 256], 0, constant(b"x")),
            Err(RegisterError::NameTooLong { len: 256 })
        );
        r.register(&[b'n'; 255], 0, constant(b"x")).unwrap();
        r.register(b"b", 0, constant(b"x")).unwrap();
        assert_eq!(
            r.register(b"c", 0, constant(b"x")),
            Err(RegisterError::Full { max: 2 })
        );
        // replacing still works on a full table
        r.register(b"b", 0, constant(b"y")).unwrap();
        assert_eq!(r.list().len(), 2);
    }

    #[test]
    fn names_end_at_nul_like_c_strings() {
        let r = Registry::new(4);
        r.register(b"abc\0junk", 0, constant(b"x")).unwrap();
        assert_eq!(r.list()[0].0, b"abc");
        assert_eq!(r.call(b"abc\0other", &[]), Reply::Result(b"x".to_vec()));
        assert_eq!(
            r.register(b"\0x", 0, constant(b"x")),
            Err(RegisterError::EmptyName)
        );
    }

    #[test]
    fn a_function_may_call_the_table() {
        let r = Arc::new(Registry::new(4));
        r.register(b"inner", 0, constant(b"in")).unwrap();
        let r2 = r.clone();
        r.register(
            b"outer",
            0,
            Arc::new(move |_: &[&[u8]]| match r2.call(b"inner", &[]) {
                Reply::Result(v) => Ok(Some([b"out+".to_vec(), v].concat())),
                other => Err(format!("{other:?}")),
            }),
        )
        .unwrap();
        assert_eq!(r.call(b"outer", &[]), Reply::Result(b"out+in".to_vec()));
    }
}
