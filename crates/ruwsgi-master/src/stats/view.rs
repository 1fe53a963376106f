//! What the stats show, gathered once per request by the master ([`View`]), and its two
//! renderings: uWSGI's JSON document ([`document`]) and the Prometheus text ([`metrics`]).
//!
//! Design decision: the view is plain data, collected from the scoreboard, the caches, the
//! sockets and `/proc` in one place, so both renderings are pure functions tested without a
//! running master. Where ruwsgi has no such thing, the JSON carries the value uWSGI shows
//! when the feature is off (each one is named in the README's "Stats server and metrics").

use std::fmt::Write as _;

use ruwsgi_config::StatsSettings;
use ruwsgi_shm::{CoreSnapshot, WorkerSnapshot, WorkerStatus, LATENCY_BOUNDS_US, LATENCY_BUCKETS};

use super::json::{Json, Obj};

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocketView {
    /// The real bound address.
    pub name: String,
    /// `uwsgi` or `http`.
    pub proto: &'static str,
    /// Connections waiting to be accepted (0 for unix sockets).
    pub queue: u32,
    /// The backlog (the `listen` value for unix sockets).
    pub max_queue: u32,
}

/// One cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheView {
    pub name: String,
    /// `djb33x` or `murmur2`.
    pub hash: &'static str,
    pub hashsize: u64,
    pub keysize: u64,
    pub max_items: u64,
    pub blocks: u64,
    pub blocksize: u64,
    pub items: u64,
    pub hits: u64,
    pub misses: u64,
    pub full: u64,
}

/// One worker: its scoreboard row, its cores, its latency buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerView {
    pub snap: WorkerSnapshot,
    pub cores: Vec<CoreSnapshot>,
    /// With `stats-verbose`: each busy core's request as `KEY=value` strings (the same
    /// order as `cores`; empty for an idle core, or without the option).
    pub vars: Vec<Vec<String>>,
    pub latency: [u64; LATENCY_BUCKETS],
}

/// The instance, as the stats show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct View {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub cwd: String,
    /// `chdir`, shown as each app's `chdir`.
    pub chdir: String,
    pub sockets: Vec<SocketView>,
    /// User locks: (name, 1 when held else 0).
    pub locks: Vec<(String, u64)>,
    pub caches: Vec<CacheView>,
    pub workers: Vec<WorkerView>,
}

impl View {
    /// The largest accept queue among the sockets (`listen_queue`, `load`).
    pub fn listen_queue(&self) -> u32 {
        self.sockets.iter().map(|s| s.queue).max().unwrap_or(0)
    }

    /// Requests of every worker.
    pub fn total_requests(&self) -> u64 {
        self.workers.iter().map(|w| w.snap.requests).sum()
    }
}

/// How many spawns uWSGI's `respawn_count` shows: it counts the first spawn too.
fn spawns(w: &WorkerSnapshot) -> u64 {
    if w.last_spawn == 0 {
        0
    } else {
        w.respawn_count + 1
    }
}

fn core_json(c: &CoreSnapshot, vars: Option<&Vec<String>>) -> Json {
    let req_info = match c.request_start_us {
        0 => Obj::new(),
        us => Obj::new().set("request_start", us / 1_000_000),
    };
    Obj::new()
        .set("id", c.id)
        .set("requests", c.requests)
        .set("static_requests", 0u64)
        .set("routed_requests", 0u64)
        .set("offloaded_requests", 0u64)
        .set("write_errors", 0u64)
        .set("read_errors", 0u64)
        .set("in_request", c.request_start_us != 0)
        // Per-request details (URIs, client addresses) only with `stats-verbose`.
        .set(
            "vars",
            vars.map_or_else(Vec::new, |v| {
                v.iter().map(|s| Json::from(s.as_str())).collect::<Vec<_>>()
            }),
        )
        .set("req_info", req_info)
        .into()
}

fn worker_json(w: &WorkerView, view: &View, opts: &StatsSettings) -> Json {
    let s = &w.snap;
    let apps: Vec<Json> = s
        .apps
        .iter()
        .map(|a| {
            Obj::new()
                .set("id", a.id)
                .set("modifier1", 0u64)
                .set(
                    "mountpoint",
                    String::from_utf8_lossy(&a.mountpoint).into_owned(),
                )
                .set("startup_time", a.startup_time)
                .set("requests", a.requests)
                .set("exceptions", a.exceptions)
                .set("chdir", view.chdir.as_str())
                .into()
        })
        .collect();
    let mut o = Obj::new()
        .set("id", s.id)
        .set("pid", s.pid)
        .set("accepting", s.accepting)
        .set("requests", s.requests)
        .set("delta_requests", s.delta_requests)
        .set("exceptions", s.exceptions)
        .set("harakiri_count", s.harakiri_count)
        .set("signals", s.signals)
        .set("signal_queue", 0u64)
        .set("status", s.status.as_str())
        .set("rss", s.rss)
        .set("vsz", s.vsz)
        .set("running_time", s.running_time)
        .set("last_spawn", s.last_spawn)
        .set("respawn_count", spawns(s))
        .set("tx", s.tx)
        .set("avg_rt", s.avg_rt)
        .set("apps", apps);
    if !opts.no_cores {
        o.push(
            "cores",
            w.cores
                .iter()
                .enumerate()
                .map(|(i, c)| core_json(c, w.vars.get(i)))
                .collect::<Vec<_>>(),
        );
    }
    o.into()
}

/// uWSGI's stats document (keys in uWSGI's order).
pub(crate) fn document(view: &View, opts: &StatsSettings) -> Json {
    let lq = view.listen_queue();
    let mut o = Obj::new()
        .set("version", ruwsgi_config::UWSGI_API_VERSION)
        .set("listen_queue", lq)
        .set("listen_queue_errors", 0u64)
        .set("signal_queue", 0u64)
        .set("load", lq)
        .set("pid", view.pid)
        .set("uid", view.uid)
        .set("gid", view.gid)
        .set("cwd", view.cwd.as_str());
    let locks: Vec<Json> = view
        .locks
        .iter()
        .map(|(name, held)| Obj::new().set(name, *held).into())
        .collect();
    o.push("locks", locks);
    if !view.caches.is_empty() {
        let caches: Vec<Json> = view
            .caches
            .iter()
            .map(|c| {
                Obj::new()
                    .set("name", c.name.as_str())
                    .set("hash", c.hash)
                    .set("hashsize", c.hashsize)
                    .set("keysize", c.keysize)
                    .set("max_items", c.max_items)
                    .set("blocks", c.blocks)
                    .set("blocksize", c.blocksize)
                    .set("items", c.items)
                    .set("hits", c.hits)
                    .set("miss", c.misses)
                    .set("full", c.full)
                    .set("last_modified_at", 0u64)
                    .into()
            })
            .collect();
        o.push("caches", caches);
    }
    let sockets: Vec<Json> = view
        .sockets
        .iter()
        .map(|s| {
            Obj::new()
                .set("name", s.name.as_str())
                .set("proto", s.proto)
                .set("queue", s.queue)
                .set("max_queue", s.max_queue)
                .set("shared", 0u64)
                .set("can_offload", 0u64)
                .into()
        })
        .collect();
    o.push("sockets", sockets);
    let workers: Vec<Json> = view
        .workers
        .iter()
        .map(|w| worker_json(w, view, opts))
        .collect();
    o.push("workers", workers);
    o.into()
}

/// Escape a Prometheus label value.
fn label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends one metric family to a text exposition.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    /// A sample `name{labels} value` (`suffix` appended to the name, e.g. `_bucket`).
    fn sample(&mut self, suffix: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(self.name);
        self.out.push_str(suffix);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                label(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// A per-cache metric: name, type, help, and its value in a cache.
type CacheMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CacheView) -> u64,
);

/// Every state a worker can be in, as `ruwsgi_worker_status` labels it.
const STATES: [WorkerStatus; 6] = [
    WorkerStatus::Idle,
    WorkerStatus::Busy,
    WorkerStatus::Signal,
    WorkerStatus::Paused,
    WorkerStatus::Stopping,
    WorkerStatus::Dead,
];

/// The Prometheus text exposition (format 0.0.4) of `view`.
pub(crate) fn metrics(view: &View) -> String {
    let mut out = String::with_capacity(8192);
    let ids: Vec<String> = view.workers.iter().map(|w| w.snap.id.to_string()).collect();
    let per_worker = |out: &mut String,
                      name: &'static str,
                      kind: &str,
                      help: &str,
                      get: &dyn Fn(&WorkerView) -> u64| {
        let mut f = Family::new(out, name, kind, help);
        for (w, id) in view.workers.iter().zip(&ids) {
            f.sample("", &[("worker", id)], get(w));
        }
    };
    let mut f = Family::new(
        &mut out,
        "ruwsgi_requests_total",
        "counter",
        "Requests served by all workers since the instance started.",
    );
    f.sample("", &[], view.total_requests());
    per_worker(
        &mut out,
        "ruwsgi_worker_requests_total",
        "counter",
        "Requests served by each worker slot since the instance started (kept across respawns).",
        &|w| w.snap.requests,
    );
    per_worker(
        &mut out,
        "ruwsgi_worker_exceptions_total",
        "counter",
        "Requests that ended in an unhandled application exception, by worker.",
        &|w| w.snap.exceptions,
    );
    per_worker(
        &mut out,
        "ruwsgi_worker_respawns_total",
        "counter",
        "Times each worker slot was respawned (the first spawn is not counted).",
        &|w| w.snap.respawn_count,
    );
    per_worker(
        &mut out,
        "ruwsgi_worker_harakiri_total",
        "counter",
        "Requests killed by harakiri, by worker.",
        &|w| w.snap.harakiri_count,
    );
    per_worker(
        &mut out,
        "ruwsgi_worker_transmitted_bytes_total",
        "counter",
        "Bytes sent to clients, by worker.",
        &|w| w.snap.tx,
    );
    per_worker(
        &mut out,
        "ruwsgi_worker_rss_bytes",
        "gauge",
        "Resident set size of each worker process (0 while it is not running).",
        &|w| w.snap.rss,
    );
    per_worker(
        &mut out,
        "ruwsgi_worker_vsz_bytes",
        "gauge",
        "Virtual memory size of each worker process (0 while it is not running).",
        &|w| w.snap.vsz,
    );
    let mut f = Family::new(
        &mut out,
        "ruwsgi_worker_status",
        "gauge",
        "1 for the state each worker is in, 0 for the others.",
    );
    for (w, id) in view.workers.iter().zip(&ids) {
        for state in STATES {
            let on = u8::from(w.snap.status == state);
            f.sample("", &[("worker", id), ("status", state.as_str())], on);
        }
    }
    let mut f = Family::new(
        &mut out,
        "ruwsgi_request_duration_seconds",
        "histogram",
        "Time from a request's start to the end of its response, all workers.",
    );
    let mut cumulative = 0u64;
    for (i, bound) in LATENCY_BOUNDS_US.iter().enumerate() {
        cumulative += view.workers.iter().map(|w| w.latency[i]).sum::<u64>();
        let le = format!("{}", *bound as f64 / 1e6);
        f.sample("_bucket", &[("le", &le)], cumulative);
    }
    cumulative += view
        .workers
        .iter()
        .map(|w| w.latency[LATENCY_BUCKETS - 1])
        .sum::<u64>();
    f.sample("_bucket", &[("le", "+Inf")], cumulative);
    let running: u64 = view.workers.iter().map(|w| w.snap.running_time).sum();
    f.sample("_sum", &[], running as f64 / 1e6);
    f.sample("_count", &[], cumulative);
    let mut f = Family::new(
        &mut out,
        "ruwsgi_listen_queue",
        "gauge",
        "Connections waiting to be accepted, by socket (unix sockets report 0).",
    );
    for s in &view.sockets {
        f.sample("", &[("socket", &s.name)], s.queue);
    }
    let mut f = Family::new(
        &mut out,
        "ruwsgi_listen_queue_max",
        "gauge",
        "Accept backlog of each socket.",
    );
    for s in &view.sockets {
        f.sample("", &[("socket", &s.name)], s.max_queue);
    }
    let caches: [CacheMetric; 5] = [
        (
            "ruwsgi_cache_hits_total",
            "counter",
            "Cache reads that found their key.",
            |c| c.hits,
        ),
        (
            "ruwsgi_cache_misses_total",
            "counter",
            "Cache reads that did not find their key.",
            |c| c.misses,
        ),
        (
            "ruwsgi_cache_full_total",
            "counter",
            "Cache inserts refused because the cache was full.",
            |c| c.full,
        ),
        (
            "ruwsgi_cache_items",
            "gauge",
            "Items stored in each cache.",
            |c| c.items,
        ),
        (
            "ruwsgi_cache_max_items",
            "gauge",
            "Items each cache can hold.",
            |c| c.max_items,
        ),
    ];
    if !view.caches.is_empty() {
        for (name, kind, help, get) in caches {
            let mut f = Family::new(&mut out, name, kind, help);
            for c in &view.caches {
                f.sample("", &[("cache", &c.name)], get(c));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        let mut w1 = WorkerSnapshot {
            id: 1,
            pid: 100,
            requests: 3,
            status: WorkerStatus::Busy,
            running_time: 1_500_000,
            last_spawn: 10,
            respawn_count: 2,
            harakiri_count: 1,
            signals: 0,
            ..WorkerSnapshot::default()
        };
        w1.delta_requests = 1;
        let mut latency = [0; LATENCY_BUCKETS];
        latency[0] = 2;
        latency[LATENCY_BUCKETS - 1] = 1;
        View {
            pid: 1,
            uid: 2,
            gid: 3,
            cwd: "/srv".into(),
            chdir: String::new(),
            sockets: vec![SocketView {
                name: "127.0.0.1:1".into(),
                proto: "http",
                queue: 4,
                max_queue: 100,
            }],
            locks: vec![("user 0".into(), 0)],
            caches: vec![],
            workers: vec![
                WorkerView {
                    snap: w1,
                    cores: vec![CoreSnapshot {
                        id: 0,
                        requests: 3,
                        request_start_us: 5_000_000,
                    }],
                    vars: vec![],
                    latency,
                },
                WorkerView {
                    snap: WorkerSnapshot {
                        id: 2,
                        ..WorkerSnapshot::default()
                    },
                    cores: vec![],
                    vars: vec![],
                    latency: [0; LATENCY_BUCKETS],
                },
            ],
        }
    }

    #[test]
    fn document_keys_and_values() {
        let opts = StatsSettings::default();
        let text = document(&view(), &opts).render(true);
        assert!(text.starts_with("{\"version\":\""), "{text}");
        for part in [
            "\"listen_queue\":4,\"listen_queue_errors\":0,\"signal_queue\":0,\"load\":4,\"pid\":1,\"uid\":2,\"gid\":3,\"cwd\":\"/srv\",\"locks\":[{\"user 0\":0}],\"sockets\":[{\"name\":\"127.0.0.1:1\",\"proto\":\"http\",\"queue\":4,\"max_queue\":100,\"shared\":0,\"can_offload\":0}]",
            "\"status\":\"busy\"",
            "\"respawn_count\":3",
            "\"harakiri_count\":1",
            "\"in_request\":1,\"vars\":[],\"req_info\":{\"request_start\":5}",
        ] {
            assert!(text.contains(part), "{part} not in {text}");
        }
        assert!(!text.contains("\"caches\""));
        let no_cores = StatsSettings {
            no_cores: true,
            ..StatsSettings::default()
        };
        assert!(!document(&view(), &no_cores).render(true).contains("cores"));
    }

    #[test]
    fn metrics_text() {
        let text = metrics(&view());
        assert!(text.contains("# TYPE ruwsgi_requests_total counter\nruwsgi_requests_total 3\n"));
        assert!(text.contains("ruwsgi_worker_requests_total{worker=\"1\"} 3\n"));
        assert!(text.contains("ruwsgi_worker_status{worker=\"1\",status=\"busy\"} 1\n"));
        assert!(text.contains("ruwsgi_worker_status{worker=\"2\",status=\"busy\"} 0\n"));
        assert!(text.contains("ruwsgi_request_duration_seconds_bucket{le=\"0.0001\"} 2\n"));
        assert!(text.contains("ruwsgi_request_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("ruwsgi_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("ruwsgi_request_duration_seconds_sum 1.5\n"));
        assert!(text.contains("ruwsgi_worker_harakiri_total{worker=\"1\"} 1\n"));
        assert!(text.contains("ruwsgi_listen_queue{socket=\"127.0.0.1:1\"} 4\n"));
        assert!(!text.contains("cache"));
    }
}
