//! The high layer: validate every collected value and fill [`Settings`].
//!
//! Each supported option maps onto exactly one field (or a small derivation, such as `wsgi`
//! choosing between file and module) in `apply`; scalars are overwritten so the last value
//! wins, lists accumulate. Every error names the option as written, the value after
//! substitution and its [`Source`].
//!
//! Unknown keys from files and `set` ([`RawKind::Custom`]) are judged here, once everything
//! is collected: a name close to an option's ([`crate::defs::near_option`]) is taken for a
//! typo and refused, unless the configuration uses it as `%(key)`; any other is kept for
//! `uwsgi.opt` and reported in [`Settings::notices`]; under `strict` every one is refused.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::defs::{near_option, OptionDef};
use crate::error::{ConfigError, Source};
use crate::lowargs::{Collected, RawKind, RawOpt};
use crate::settings::{
    AreaSize, ExpiresRule, LogDate, MuleSpec, OptValue, PidfileAction, Protocol, Settings,
    SocketSpec, StaticMap, SuspendEngine,
};
use crate::signal_spec::{self, AlarmPlugin};

// ---- issue 13: plugins ----

/// What a `plugins` entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plugin {
    /// Built in and always on: `python`, `python3`, `python3NN`, `http`.
    BuiltIn,
    /// `notfound`: a request no app serves gets 404.
    NotFound,
}

/// The plugin a `plugins` entry names, if ruwsgi has it. Accepts the forms uWSGI does: an
/// optional `N:` modifier prefix (`0:python3`), a `_plugin` or `_plugin.so` suffix, and a
/// path (`/usr/lib/uwsgi/python3_plugin.so`, only its file name counts).
fn builtin_plugin(name: &str) -> Option<Plugin> {
    let name = match name.split_once(':') {
        Some((modifier, rest)) if modifier.bytes().all(|b| b.is_ascii_digit()) => rest,
        _ => name,
    };
    let name = name.rsplit('/').next().unwrap_or(name);
    let name = name.strip_suffix("_plugin.so").unwrap_or(name);
    let name = name.strip_suffix("_plugin").unwrap_or(name);
    let python = name
        .strip_prefix("python")
        .is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit()));
    match name {
        "http" => Some(Plugin::BuiltIn),
        "notfound" => Some(Plugin::NotFound),
        _ if python => Some(Plugin::BuiltIn),
        _ => None,
    }
}

/// uWSGI boolean rules: bare = true; `0`, `false`, `off`, `no` (any case) = false.
pub fn parse_bool(value: Option<&str>) -> bool {
    match value {
        None => true,
        Some(v) => {
            let v = v.trim();
            !(v == "0"
                || v.eq_ignore_ascii_case("false")
                || v.eq_ignore_ascii_case("off")
                || v.eq_ignore_ascii_case("no"))
        }
    }
}

/// One value being validated, with everything an error message needs.
struct Val<'a> {
    name: &'a str,
    value: Option<&'a str>,
    at: &'a Source,
}

impl Val<'_> {
    fn invalid(&self, expected: &str) -> ConfigError {
        ConfigError::InvalidValue {
            name: self.name.to_string(),
            value: self.value.unwrap_or("").to_string(),
            at: self.at.clone(),
            expected: expected.to_string(),
        }
    }

    fn text(&self) -> &str {
        self.value.unwrap_or("").trim()
    }

    fn boolean(&self) -> bool {
        parse_bool(self.value)
    }

    /// Any string, possibly empty.
    fn string(&self) -> String {
        self.value.unwrap_or("").to_string()
    }

    /// A non-empty string.
    fn required(&self, expected: &str) -> Result<String, ConfigError> {
        match self.value.map(str::trim) {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            _ => Err(self.invalid(expected)),
        }
    }

    fn path(&self) -> Result<PathBuf, ConfigError> {
        self.required("a path").map(PathBuf::from)
    }

    fn number(&self, min: u64, max: u64) -> Result<u64, ConfigError> {
        let t = self.text();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid("a number"));
        }
        match t.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(&expected_range(min, max))),
        }
    }

    fn size(&self, min: u64, max: u64) -> Result<u64, ConfigError> {
        let t = self.text();
        let (digits, mult) = match t.as_bytes().last().map(u8::to_ascii_lowercase) {
            Some(b'k') => (&t[..t.len() - 1], 1u64 << 10),
            Some(b'm') => (&t[..t.len() - 1], 1 << 20),
            Some(b'g') => (&t[..t.len() - 1], 1 << 30),
            _ => (t, 1),
        };
        let expected = if max == u64::MAX {
            "a size in bytes (k/m/g suffixes allowed)".to_string()
        } else {
            format!("a size from {min} to {max} bytes")
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid(&expected));
        }
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| self.invalid(&expected))
    }

    fn seconds(&self) -> Result<Duration, ConfigError> {
        let t = self.text();
        match t.parse::<u64>() {
            Ok(n) if t.bytes().all(|b| b.is_ascii_digit()) => Ok(Duration::from_secs(n)),
            _ => Err(self.invalid("a number of seconds")),
        }
    }

    fn mode(&self) -> Result<u32, ConfigError> {
        let t = self.text();
        if t.is_empty() {
            return Ok(0o666);
        }
        u32::from_str_radix(t, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| self.invalid("an octal mode such as 660"))
    }

    fn key_value(&self, expected: &str) -> Result<(String, String), ConfigError> {
        match self.value.and_then(|v| v.split_once('=')) {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(self.invalid(expected)),
        }
    }
}

fn expected_range(min: u64, max: u64) -> String {
    if max == u64::MAX {
        format!("a number of at least {min}")
    } else {
        format!("a number from {min} to {max}")
    }
}

/// `mule`: empty or a true flag value adds a plain mule, a false one adds none, a
/// `pkg.mod:callable` is refused (not supported yet), anything else is a script path.
fn mule_spec(v: &Val<'_>) -> Result<Option<MuleSpec>, ConfigError> {
    let t = v.text();
    let flag_word = ["1", "0", "true", "false", "on", "off", "yes", "no"]
        .iter()
        .any(|w| t.eq_ignore_ascii_case(w));
    if t.is_empty() || flag_word {
        return Ok(v.boolean().then_some(MuleSpec::Plain));
    }
    let callable = !t.contains('/') && !t.ends_with(".py") && t.contains(':');
    if callable {
        let (module, function) = t.split_once(':').unwrap_or((t, ""));
        if module.is_empty() || function.is_empty() {
            return Err(v.invalid("a script path or module:callable"));
        }
        return Ok(Some(MuleSpec::Callable(t.to_string())));
    }
    Ok(Some(MuleSpec::Script(PathBuf::from(t))))
}

/// Largest shared area accepted (1 TiB): a typo must not map the address space away.
const MAX_AREA_BYTES: u64 = 1 << 40;

/// `sharedarea`: `N` pages, or `pages=N` / `size=BYTES` (decimal or `0x` hex).
fn area_size(v: &Val<'_>) -> Result<AreaSize, ConfigError> {
    let t = v.text().trim();
    let expected = "N pages, pages=N or size=BYTES (file= and fd= areas are not supported yet)";
    let number = |s: &str| -> Option<u64> {
        match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        }
    };
    let size = if let Some(n) = t.strip_prefix("pages=") {
        number(n).map(AreaSize::Pages)
    } else if let Some(n) = t.strip_prefix("size=") {
        number(n).map(AreaSize::Bytes)
    } else if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() {
        number(t).map(AreaSize::Pages)
    } else {
        None
    };
    match size {
        Some(AreaSize::Pages(n)) if n > 0 && n <= MAX_AREA_BYTES / 4096 => Ok(AreaSize::Pages(n)),
        Some(AreaSize::Bytes(n)) if n > 0 && n <= MAX_AREA_BYTES => Ok(AreaSize::Bytes(n)),
        _ => Err(v.invalid(expected)),
    }
}

// ---- static files (issue 13) ----

/// `static-map` / `static-map2`: `/URL=DIR`.
fn static_map(v: &Val<'_>, keep_mountpoint: bool) -> Result<StaticMap, ConfigError> {
    let expected = "MOUNTPOINT=DIR (such as /static=/srv/static)";
    let (mountpoint, dir) = v.key_value(expected)?;
    let dir = dir.trim();
    if dir.is_empty() || mountpoint.contains('\0') || dir.contains('\0') {
        return Err(v.invalid(expected));
    }
    Ok(StaticMap {
        mountpoint,
        dir: PathBuf::from(dir),
        keep_mountpoint,
    })
}

fn regex(v: &Val<'_>, pattern: &str) -> Result<regex::Regex, ConfigError> {
    regex::Regex::new(pattern).map_err(|e| v.invalid(&format!("a valid regular expression ({e})")))
}

/// `static-expires*`: `REGEX SECS` (separated by the last run of spaces).
fn expires_rule(v: &Val<'_>) -> Result<ExpiresRule, ConfigError> {
    let expected = "REGEX SECONDS";
    let t = v.text();
    let (pattern, secs) = t.rsplit_once(' ').ok_or_else(|| v.invalid(expected))?;
    let pattern = pattern.trim_end();
    let secs = secs.trim();
    if pattern.is_empty() || secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return Err(v.invalid(expected));
    }
    let seconds = secs.parse().map_err(|_| v.invalid(expected))?;
    Ok(ExpiresRule {
        pattern: regex(v, pattern)?,
        seconds,
    })
}

/// `static-expires-type`: `TYPE=SECS`.
fn expires_type(v: &Val<'_>) -> Result<(String, u64), ConfigError> {
    let expected = "CONTENT/TYPE=SECONDS";
    let (ty, secs) = v.key_value(expected)?;
    let secs = secs.trim();
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return Err(v.invalid(expected));
    }
    Ok((ty, secs.parse().map_err(|_| v.invalid(expected))?))
}

/// `daemonize`/`daemonize2`: the log file. uWSGI also takes `host:port` (logs sent over
/// UDP); ruwsgi refuses that form rather than create a file with that name.
fn daemon_log(v: &Val<'_>) -> Result<PathBuf, ConfigError> {
    let t = v.text();
    let udp = !t.contains('/')
        && t.rsplit_once(':')
            .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if udp {
        return Err(v.invalid("a log file path (logging to a UDP address is not supported)"));
    }
    v.path()
}

fn as_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Builds and validates [`Settings`] from the collected options.
pub fn build(collected: Collected) -> Result<Settings, ConfigError> {
    let strict = collected
        .opts
        .iter()
        .rfind(|o| o.def().is_some_and(|d| d.name == "strict"))
        .is_some_and(|o| parse_bool(o.value.as_deref()));
    let mut s = Settings::default();
    let mut reload_mercy = None;
    let mut reported = HashSet::new();
    for opt in &collected.opts {
        match opt.kind {
            RawKind::Option(def) => apply(&mut s, def, opt, &mut reload_mercy)?,
            RawKind::Custom => {
                check_custom(opt, strict, &collected.referenced)?;
                if reported.insert(opt.key.as_str()) {
                    s.notices.push(format!(
                        "custom option '{}' (from {}) kept for uwsgi.opt",
                        opt.key, opt.at
                    ));
                }
            }
            RawKind::Placeholder => {}
        }
    }
    s.processes.reload_mercy = reload_mercy.unwrap_or(s.processes.worker_reload_mercy);
    check_signal_references(&s, &collected.opts)?;
    check_async(&s, &collected.opts)?;
    s.opt = collected
        .opts
        .into_iter()
        .map(|o| {
            let value = match o.value {
                None => OptValue::Flag,
                Some(v) => OptValue::Value(v),
            };
            (o.key, value)
        })
        .collect();
    s.config_files = collected.config_files;
    s.warnings.extend(collected.warnings);
    Ok(s)
}

/// Async mode's options agree: a suspend engine needs `async`, and `async` runs its cores
/// on one thread, so it cannot be combined with `threads` > 1. The error points at the
/// last option that set the conflicting value.
fn check_async(s: &Settings, opts: &[RawOpt]) -> Result<(), ConfigError> {
    let last = |names: &[&str]| {
        opts.iter()
            .rfind(|o| o.def().is_some_and(|d| names.contains(&d.name)))
    };
    let p = &s.processes;
    if p.async_cores == 0 && p.suspend_engine != SuspendEngine::None {
        if let Some(o) = last(&["greenlet", "ugreen"]) {
            return Err(ConfigError::Incompatible {
                name: o.key.clone(),
                at: o.at.clone(),
                reason: "needs async mode: add 'async N' (N cores per worker)".into(),
            });
        }
    }
    if p.async_cores > 0 && p.threads > 1 {
        if let Some(o) = last(&["async"]) {
            return Err(ConfigError::Incompatible {
                name: o.key.clone(),
                at: o.at.clone(),
                reason: format!(
                    "cannot be combined with 'threads {}': ruwsgi runs a worker's async cores on \
                     one thread; use more processes instead",
                    p.threads
                ),
            });
        }
    }
    Ok(())
}

/// Checks what signal-framework options refer to once every option is read (a farm or an
/// alarm may come before the mules or the alarm it names): farm members and `mule:` alarms
/// name existing mules, alarm triggers name defined alarms. The error points at the option
/// that refers.
fn check_signal_references(s: &Settings, opts: &[RawOpt]) -> Result<(), ConfigError> {
    let mules = s.processes.mules.len();
    let alarm_defined = |name: &str| s.signals.alarms.iter().any(|a| a.name == name);
    for opt in opts {
        let RawKind::Option(def) = opt.kind else {
            continue;
        };
        let v = Val {
            name: &opt.key,
            value: opt.value.as_deref(),
            at: &opt.at,
        };
        let unknown_alarm = |name: &str| {
            v.invalid(&format!(
                "names of alarms defined with 'alarm' ('{name}' is none)"
            ))
        };
        match def.name {
            "farm" => {
                let farm = signal_spec::parse_farm(v.text()).map_err(|why| v.invalid(&why))?;
                if let Some(id) = farm.mules.iter().find(|id| **id as usize > mules) {
                    return Err(v.invalid(&format!(
                        "mule ids from 1 to {mules}, the number of mules (not {id})"
                    )));
                }
            }
            "alarm" => {
                let alarm = signal_spec::parse_alarm(v.text()).map_err(|why| v.invalid(&why))?;
                if let AlarmPlugin::Mule(id) = alarm.plugin {
                    if mules == 0 || id as usize > mules {
                        return Err(v.invalid(&format!(
                            "mule:N with N from 0 (any mule) to {mules}, the number of mules \
                             (not {id})"
                        )));
                    }
                }
            }
            "alarm-log" | "not-alarm-log" => {
                let rule =
                    signal_spec::parse_alarm_log(v.text(), false).map_err(|why| v.invalid(&why))?;
                if let Some(name) = rule.alarms.iter().find(|n| !alarm_defined(n)) {
                    return Err(unknown_alarm(name));
                }
            }
            "alarm-backlog" | "alarm-segfault" => {
                let name = v.text();
                if !alarm_defined(name) {
                    return Err(unknown_alarm(name));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether the custom key `opt` may stay: never under `strict`; not when its name is close
/// to an option's (a typo) unless the configuration uses it as `%(key)`.
fn check_custom(
    opt: &RawOpt,
    strict: bool,
    referenced: &HashSet<String>,
) -> Result<(), ConfigError> {
    let meant = near_option(&opt.key);
    if strict {
        return Err(ConfigError::UnknownKey {
            name: opt.key.clone(),
            at: opt.at.clone(),
            hint: match meant {
                Some(m) => format!("; did you mean '{m}'?"),
                None => format!(
                    "; declare values for the app with `set-placeholder = {}=VALUE`",
                    opt.key
                ),
            },
        });
    }
    match meant {
        Some(meant) if !referenced.contains(&opt.key) => Err(ConfigError::NearOption {
            name: opt.key.clone(),
            at: opt.at.clone(),
            meant: meant.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Applies one supported option to `s`.
fn apply(
    s: &mut Settings,
    def: &'static OptionDef,
    opt: &RawOpt,
    reload_mercy: &mut Option<Duration>,
) -> Result<(), ConfigError> {
    let v = Val {
        name: &opt.key,
        value: opt.value.as_deref(),
        at: &opt.at,
    };
    let socket = |protocol| -> Result<SocketSpec, ConfigError> {
        Ok(SocketSpec {
            protocol,
            address: v.required("a socket address (host:port, :port or a path)")?,
            option: def.name,
        })
    };
    match def.name {
        // ---- sockets ----
        "socket" => s.sockets.bind.push(socket(Protocol::Uwsgi)?),
        "http-socket" | "http11-socket" | "http" => s.sockets.bind.push(socket(Protocol::Http)?),
        "listen" => {
            s.sockets.listen = u32::try_from(v.number(1, u64::from(u32::MAX))?).unwrap_or(u32::MAX)
        }
        "no-defer-accept" => s.sockets.defer_accept = !v.boolean(),
        "chmod-socket" => s.sockets.chmod_socket = Some(v.mode()?),
        "buffer-size" => s.requests.buffer_size = as_usize(v.size(1, 65535)?),
        "socket-timeout" => s.requests.socket_timeout = v.seconds()?,
        "http-header-timeout" => s.requests.header_timeout = v.seconds()?,
        "http-keepalive-timeout" => s.requests.keepalive_timeout = v.seconds()?,
        "http-keepalive" => {
            if !v.boolean() {
                s.warnings.push(format!(
                    "'{}' (from {}) cannot be turned off: HTTP sockets always keep HTTP/1.1 \
                     connections alive (idle ones close after http-keepalive-timeout)",
                    opt.key, opt.at
                ));
            }
        }
        "post-buffering" => s.requests.post_buffering = as_usize(v.size(0, u64::MAX)?),
        "limit-post" => s.requests.limit_post = v.size(0, u64::MAX)?,
        "max-vars" => s.requests.max_vars = as_usize(v.number(1, 32767)?),
        "uwsgi-trusted-peers" => s.sockets.trusted_peers.push(v.required("a peer address")?),
        "dynamic-apps" => s.requests.dynamic_apps = v.boolean(),
        "http-strict-host" => s.requests.http_strict_host = v.boolean(),
        // ---- processes ----
        "master" => {
            if !v.boolean() {
                s.warnings.push(format!(
                    "'{}' (from {}) cannot be turned off: ruwsgi always runs a master",
                    opt.key, opt.at
                ));
            }
        }
        "processes" => s.processes.workers = as_usize(v.number(1, 65535)?),
        "threads" => s.processes.threads = as_usize(v.number(1, 65535)?),
        "async" => s.processes.async_cores = as_usize(v.number(0, 65535)?),
        "greenlet" | "ugreen" => {
            s.processes.suspend_engine = if v.boolean() {
                SuspendEngine::Greenlet
            } else {
                SuspendEngine::None
            }
        }
        "disable-async-warn-on-queue-full" => s.processes.async_warn_queue_full = !v.boolean(),
        "enable-threads" => s.processes.enable_threads = v.boolean(),
        "lazy-apps" | "lazy" => s.processes.lazy_apps = v.boolean(),
        "rpc-max" => s.api.rpc_max = as_usize(v.number(1, 65536)?),
        "locks" => s.api.locks = as_usize(v.number(0, 65535)?),
        "sharedarea" => s.api.sharedareas.push(area_size(&v)?),
        "cache2" => {
            let spec = crate::cache_spec::parse_cache2(v.text()).map_err(|why| v.invalid(&why))?;
            s.api.caches.push(spec);
        }
        "cache" => s.api.legacy_cache = v.number(0, u64::from(u32::MAX) - 2)?,
        "cache-blocksize" => s.api.cache_blocksize = v.size(1, 1 << 30)?,
        "cache-store" => s.api.cache_store = Some(v.path()?),
        "cache-store-sync" => s.api.cache_store_sync = v.number(0, 1 << 32)?,
        "cache-expire-freq" => s.api.cache_expire_freq = v.number(1, 86400)?,
        "cache-no-expire" => s.api.cache_no_expire = v.boolean(),
        "cache-report-freed-items" => s.api.cache_report_freed = v.boolean(),
        "max-requests" => s.processes.max_requests = v.number(0, u64::MAX)?,
        "max-requests-delta" => s.processes.max_requests_delta = v.number(0, u64::MAX)?,
        "min-worker-lifetime" => s.processes.min_worker_lifetime = v.seconds()?,
        "worker-reload-mercy" => s.processes.worker_reload_mercy = v.seconds()?,
        "harakiri" => s.processes.harakiri.timeout = v.seconds()?,
        "reload-on-rss" => s.processes.recycle.rss = v.number(0, 1 << 40)? << 20,
        "reload-on-as" => s.processes.recycle.address_space = v.number(0, 1 << 40)? << 20,
        "evil-reload-on-rss" => s.processes.recycle.evil_rss = v.number(0, 1 << 40)? << 20,
        "evil-reload-on-as" => s.processes.recycle.evil_address_space = v.number(0, 1 << 40)? << 20,
        "max-worker-lifetime" => s.processes.recycle.max_lifetime = v.seconds()?,
        "max-worker-lifetime-delta" => s.processes.recycle.max_lifetime_delta = v.seconds()?,
        "reload-on-exception" => s.processes.recycle.on_exception = v.boolean(),
        "touch-reload" => s.processes.touch_reload.push(v.path()?),
        "touch-workers-reload" => s.processes.touch_workers_reload.push(v.path()?),
        "touch-chain-reload" => s.processes.touch_chain_reload.push(v.path()?),
        "master-fifo" => s.processes.master_fifo.push(v.path()?),
        "reload" => s.processes.signal_pidfile = Some((PidfileAction::Reload, v.path()?)),
        "stop" => s.processes.signal_pidfile = Some((PidfileAction::Stop, v.path()?)),
        "harakiri-verbose" => s.processes.harakiri.verbose = v.boolean(),
        "harakiri-graceful-timeout" => s.processes.harakiri.graceful_timeout = v.seconds()?,
        "harakiri-graceful-signal" => {
            s.processes.harakiri.graceful_signal = v.number(1, 31)? as i32
        }
        "reload-mercy" => *reload_mercy = Some(v.seconds()?),
        "die-on-term" => s.processes.die_on_term = v.boolean(),
        "sigterm-reload" => s.processes.sigterm_reload = v.boolean(),
        "forkbomb-delay" => s.processes.forkbomb_delay = v.seconds()?,
        "pidfile" => s.processes.pidfile = Some(v.path()?),
        "safe-pidfile" => s.processes.safe_pidfile = Some(v.path()?),
        "vacuum" => s.processes.vacuum = v.boolean(),
        "uid" => s.processes.uid = Some(v.required("a user name or number")?),
        "gid" => s.processes.gid = Some(v.required("a group name or number")?),
        "need-app" => s.processes.need_app = v.boolean(),
        "mules" => {
            let n = as_usize(v.number(0, 1024)?);
            s.processes
                .mules
                .extend(std::iter::repeat_n(MuleSpec::Plain, n));
        }
        "mule" => s.processes.mules.extend(mule_spec(&v)?),
        "spooler" => s.spooler.dirs.push(v.path()?),
        "spooler-external" => s.spooler.external.push(v.path()?),
        "spooler-processes" => s.spooler.processes = as_usize(v.number(1, 1024)?),
        "spooler-frequency" => s.spooler.frequency = v.number(1, 86400 * 365)?,
        "spooler-ordered" => s.spooler.ordered = v.boolean(),
        "spooler-import" => s
            .spooler
            .imports
            .push(v.required("a module name or a .py file")?),
        "spooler-max-tasks" => s.spooler.max_tasks = v.number(0, u64::MAX)?,
        "spooler-chdir" => s.spooler.chdir = Some(v.path()?),
        "spooler-quiet" => s.spooler.quiet = v.boolean(),
        "spooler-fsync" => s.spooler.fsync = v.boolean(),
        "spooler-accept-remote" => s.spooler.accept_remote = v.boolean(),
        "spooler-harakiri" => s.spooler.harakiri = v.seconds()?,
        "procname-prefix" => s.processes.procname_prefix = Some(v.string()),
        "procname-prefix-spaced" => s.processes.procname_prefix = Some(format!("{} ", v.string())),
        "procname-append" => s.processes.procname_append = Some(v.string()),
        "procname" => s.processes.procname = Some(v.required("a process name")?),
        "procname-master" => s.processes.procname_master = Some(v.required("a process name")?),
        "memory-report" => s.logging.memory_report = v.boolean(),
        "stats" => {
            s.stats.address = Some(v.required("an address (host:port, :port or a unix path)")?)
        }
        "stats-http" => s.stats.http = v.boolean(),
        "stats-token" => s.stats.token = Some(v.required("a token")?),
        "stats-minified" => s.stats.minified = v.boolean(),
        "stats-no-cores" => s.stats.no_cores = v.boolean(),
        "stats-verbose" => s.stats.verbose = v.boolean(),
        "stats-no-metrics" => s.stats.no_metrics = v.boolean(),
        "stats-prometheus" => {
            s.stats.prometheus = Some(v.required("an address (host:port, :port or a unix path)")?)
        }
        "auto-procname" => s.processes.auto_procname = v.boolean(),
        // ---- python ----
        "wsgi-file" => s.python.wsgi_file = Some(v.path()?),
        "wsgi" => {
            let app = v.required("a module (pkg.mod[:callable]) or a .py/.wsgi file")?;
            if app.ends_with(".py") || app.ends_with(".wsgi") {
                s.python.wsgi_file = Some(PathBuf::from(app));
            } else {
                s.python.module = Some(app);
            }
        }
        "module" => s.python.module = Some(v.required("a module (pkg.mod[:callable])")?),
        "callable" => s.python.callable = v.required("a callable name")?,
        "mount" => {
            let (mountpoint, app) = v.key_value("MOUNTPOINT=APP")?;
            if app.trim().is_empty() {
                return Err(v.invalid("MOUNTPOINT=APP"));
            }
            s.python.mounts.push((mountpoint, app.trim().to_string()));
        }
        "manage-script-name" => s.python.manage_script_name = v.boolean(),
        "chdir" => s.processes.chdir = Some(v.path()?),
        "pythonpath" => s.python.pythonpath.push(v.path()?),
        "home" => s.python.home = Some(v.path()?),
        "env" => s.processes.env.push(v.key_value("KEY=VALUE")?),
        "wsgi-disable-file-wrapper" => s.python.disable_file_wrapper = v.boolean(),
        "py-call-osafterfork" => s.python.py_call_osafterfork = v.boolean(),
        "plugins" => {
            let list = v.text().split([',', ' ', '\t']).filter(|p| !p.is_empty());
            for plugin in list {
                match builtin_plugin(plugin) {
                    Some(Plugin::BuiltIn) => {}
                    Some(Plugin::NotFound) => s.requests.notfound = true,
                    None => {
                        return Err(ConfigError::UnknownPlugin {
                            plugin: plugin.to_string(),
                            at: opt.at.clone(),
                        })
                    }
                }
            }
        }
        // ---- issue 13 options ----
        "daemonize" => s.processes.daemonize = Some(daemon_log(&v)?),
        "daemonize2" => s.processes.daemonize2 = Some(daemon_log(&v)?),
        "pidfile2" => s.processes.pidfile2 = Some(v.path()?),
        "master-as-root" => s.processes.master_as_root = v.boolean(),
        "exit-on-reload" => s.processes.exit_on_reload = v.boolean(),
        "attach-daemon" => s.processes.daemons.push(v.required("a shell command")?),
        "py-autoreload" => s.python.autoreload = v.seconds()?,
        "py-auto-reload-ignore" => s
            .python
            .autoreload_ignore
            .push(v.required("a module name")?),
        "wsgi-accept-buffer" => s.python.accept_buffer = v.boolean(),
        "logdate" => {
            s.logging.logdate = match v.value.map(str::trim) {
                None => Some(LogDate::Ctime),
                Some(t) if t == "1" || t.eq_ignore_ascii_case("true") => Some(LogDate::Ctime),
                Some(t)
                    if t == "0"
                        || t.eq_ignore_ascii_case("false")
                        || t.eq_ignore_ascii_case("off")
                        || t.eq_ignore_ascii_case("no") =>
                {
                    None
                }
                Some(_) => Some(LogDate::Format(v.string())),
            }
        }
        // Accepted, nothing to set: see their `--help` lines.
        "thunder-lock" | "single-interpreter" | "plugins-dir" | "honour-range" => {}
        "post-buffering-bufsize" => {
            v.size(1, u64::MAX)?;
        }
        // ---- logging ----
        "logto" => s.logging.logto = Some(v.path()?),
        "disable-logging" => s.logging.disable_logging = v.boolean(),
        "log-format" => s.logging.log_format = Some(v.string()),
        "log-x-forwarded-for" => s.logging.log_x_forwarded_for = v.boolean(),
        // ---- static files (issue 13) ----
        "static-map" => s.statics.maps.push(static_map(&v, false)?),
        "static-map2" => s.statics.maps.push(static_map(&v, true)?),
        "static-check" => s.statics.check.push(v.path()?),
        "static-index" => s.statics.index.push(v.required("a file name")?),
        "static-skip-ext" => s.statics.skip_ext.push(v.required("a file name ending")?),
        "static-safe" => s.statics.safe.push(v.path()?),
        "static-expires-type" => s.statics.expires_type.push(expires_type(&v)?),
        "static-expires" => s.statics.expires_file.push(expires_rule(&v)?),
        "static-expires-uri" => s.statics.expires_uri.push(expires_rule(&v)?),
        "static-expires-path-info" => s.statics.expires_path_info.push(expires_rule(&v)?),
        "static-gzip" => {
            let pattern = v.required("a regular expression")?;
            s.statics.gzip.push(regex(&v, &pattern)?)
        }
        "static-gzip-all" => s.statics.gzip_all = v.boolean(),
        "mimefile" => s.statics.mimefiles.push(v.path()?),
        "offload-threads" => s.statics.offload_threads = as_usize(v.number(0, 256)?),
        // ---- signals, timers, cron, mules and alarms ----
        "timer" | "rbtimer" => {
            let rb = def.name == "rbtimer";
            let timer = signal_spec::parse_timer(v.text(), rb).map_err(|why| v.invalid(&why))?;
            s.signals.timers.push(timer);
        }
        "cron" | "unique-cron" => {
            let unique = def.name == "unique-cron";
            let cron = signal_spec::parse_cron(v.text(), unique).map_err(|why| v.invalid(&why))?;
            s.signals.crons.push(cron);
        }
        "cron2" => {
            let cron = signal_spec::parse_cron2(v.text()).map_err(|why| v.invalid(&why))?;
            s.signals.crons.push(cron);
        }
        "touch-signal" => {
            let touch = signal_spec::parse_touch_signal(v.text()).map_err(|why| v.invalid(&why))?;
            s.signals.touch_signals.push(touch);
        }
        "farm" => {
            let farm = signal_spec::parse_farm(v.text()).map_err(|why| v.invalid(&why))?;
            if s.signals.farms.iter().any(|f| f.name == farm.name) {
                return Err(v.invalid(&format!("a farm name not used yet ('{}' is)", farm.name)));
            }
            s.signals.farms.push(farm);
        }
        "mule-harakiri" => s.signals.mule_harakiri = v.seconds()?,
        "mule-msg-size" => s.signals.mule_msg_size = v.size(0, 1 << 30)?,
        "mule-msg-recv-size" => s.signals.mule_msg_recv_size = v.size(1, 1 << 30)?,
        "signal-bufsize" => s.signals.signal_bufsize = v.size(0, 1 << 30)?,
        "mule-reload-mercy" => s.signals.mule_reload_mercy = v.seconds()?,
        "touch-mules-reload" => s.signals.touch_mules_reload.push(v.path()?),
        "alarm" => {
            let alarm = signal_spec::parse_alarm(v.text()).map_err(|why| v.invalid(&why))?;
            if s.signals.alarms.iter().any(|a| a.name == alarm.name) {
                return Err(v.invalid(&format!("an alarm name not used yet ('{}' is)", alarm.name)));
            }
            s.signals.alarms.push(alarm);
        }
        "alarm-log" | "not-alarm-log" => {
            let negate = def.name == "not-alarm-log";
            let rule =
                signal_spec::parse_alarm_log(v.text(), negate).map_err(|why| v.invalid(&why))?;
            s.signals.alarm_log.push(rule);
        }
        "alarm-backlog" => s.signals.alarm_backlog.push(v.required("an alarm name")?),
        "alarm-segfault" => s.signals.alarm_segfault.push(v.required("an alarm name")?),
        "alarm-freq" => s.signals.alarm_freq = v.seconds()?,
        "alarm-msg-size" => s.signals.alarm_msg_size = v.size(1, 1 << 30)?,
        // ---- handled while collecting ----
        "strict" | "set" | "set-placeholder" | "ini" | "yaml" | "json" | "toml" | "show-config"
        | "help" | "version" => {}
        other => debug_assert!(false, "option '{other}' is defined but not applied"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::{Kind, Status, OPTIONS};

    #[test]
    fn bools() {
        assert!(parse_bool(None));
        assert!(parse_bool(Some("")));
        assert!(parse_bool(Some("yes")) && parse_bool(Some("1")) && parse_bool(Some("true")));
        for f in ["0", "false", "FALSE", "Off", "no", " no "] {
            assert!(!parse_bool(Some(f)), "{f}");
        }
    }

    fn static_val(name: &str, value: &str) -> Result<Settings, ConfigError> {
        let def = crate::defs::lookup(name).unwrap();
        let opt = RawOpt::for_test(def, value);
        let mut s = Settings::default();
        apply(&mut s, def, &opt, &mut None).map(|()| s)
    }

    #[test]
    fn static_options() {
        let s = static_val("static-map", "/static=/srv/www ").unwrap();
        assert_eq!(s.statics.maps[0].mountpoint, "/static");
        assert_eq!(s.statics.maps[0].dir, PathBuf::from("/srv/www"));
        assert!(!s.statics.maps[0].keep_mountpoint);
        assert!(static_val("static-map2", "/s=/srv").unwrap().statics.maps[0].keep_mountpoint);
        assert!(static_val("static-map", "/static").is_err());
        assert!(static_val("static-map", "/static=").is_err());
        let s = static_val("static-expires-uri", "\\.(css|js)$  3600").unwrap();
        let rule = &s.statics.expires_uri[0];
        assert_eq!(rule.seconds, 3600);
        assert!(rule.pattern.is_match("/a/b.css"));
        assert!(static_val("static-expires", "nospace").is_err());
        assert!(static_val("static-expires", "( 10").is_err());
        assert!(static_val("static-expires", "x 1h").is_err());
        let s = static_val("static-expires-type", "text/css=60").unwrap();
        assert_eq!(s.statics.expires_type, [("text/css".to_string(), 60)]);
        assert!(static_val("static-expires-type", "text/css").is_err());
        assert!(static_val("static-gzip", "[").is_err());
        assert_eq!(
            static_val("offload-threads", "4")
                .unwrap()
                .statics
                .offload_threads,
            4
        );
    }

    #[test]
    fn plugins() {
        for p in [
            "python",
            "python3",
            "python311",
            "http",
            "python3_plugin.so",
            "0:python3",
            "0:python",
            "/usr/lib/uwsgi/plugins/python312_plugin.so",
            "http_plugin",
        ] {
            assert_eq!(builtin_plugin(p), Some(Plugin::BuiltIn), "{p}");
        }
        assert_eq!(builtin_plugin("notfound"), Some(Plugin::NotFound));
        assert_eq!(builtin_plugin("notfound_plugin.so"), Some(Plugin::NotFound));
        for p in [
            "php",
            "pythonx",
            "x:python3",
            "gevent",
            "0:",
            "python3.11",
            "",
        ] {
            assert_eq!(builtin_plugin(p), None, "{p}");
        }
    }

    #[test]
    fn sharedarea_sizes() {
        let def = crate::defs::lookup("sharedarea").unwrap();
        let parse = |text: &str| {
            let opt = RawOpt::for_test(def, text);
            let mut s = Settings::default();
            apply(&mut s, def, &opt, &mut None)
                .ok()
                .map(|()| s.api.sharedareas[0])
        };
        assert_eq!(parse("4"), Some(AreaSize::Pages(4)));
        assert_eq!(parse("pages=2"), Some(AreaSize::Pages(2)));
        assert_eq!(parse("size=100"), Some(AreaSize::Bytes(100)));
        assert_eq!(parse("size=0x1000"), Some(AreaSize::Bytes(4096)));
        for bad in [
            "",
            "0",
            "size=0",
            "pages=x",
            "file=/tmp/a",
            "fd=3",
            "-1",
            "size=2000000000000",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }

    fn load(args: &[&str]) -> Result<Settings, ConfigError> {
        let argv = args.iter().map(std::ffi::OsString::from).collect();
        match crate::load(argv, Vec::new())? {
            crate::Command::Run(s) => Ok(*s),
            _ => panic!("not a run"),
        }
    }

    fn load_err(args: &[&str]) -> String {
        load(args).unwrap_err().to_string()
    }

    #[test]
    fn signal_options() {
        let s = load(&[
            "--timer",
            "1 10",
            "--signal-rbtimer",
            "2 5",
            "--cron",
            "0 -2 -1 -1 -1 echo hi",
            "--unique-cron",
            "-5 -1 -1 -1 -1 echo u",
            "--cron2",
            "hour=3,harakiri=9 echo two",
            "--touch-signal",
            "/tmp/t 7",
            "--farm",
            "f:1,2",
            "--mules",
            "2",
            "--mule-harakiri",
            "30",
            "--mule-msg-size",
            "1k",
            "--mule-msg-recv-size",
            "4096",
            "--signal-bufsize",
            "2m",
            "--mule-reload-mercy",
            "5",
            "--touch-mules-reload",
            "/tmp/m",
            "--log-alarm",
            "a,b ERROR",
            "--alarm",
            "a cmd:mail root",
            "--alarm",
            "b mule:2",
            "--not-log-alarm",
            "a IGNORED",
            "--alarm-log",
            "b x",
            "--alarm-lq",
            "a",
            "--alarm-segfault",
            "b",
            "--alarm-freq",
            "10",
            "--alarm-msg-size",
            "100",
        ])
        .unwrap();
        let g = &s.signals;
        assert_eq!(g.timers.len(), 2);
        assert!(!g.timers[0].rb && g.timers[1].rb);
        assert_eq!((g.timers[1].signum, g.timers[1].period.as_secs()), (2, 5));
        assert_eq!(g.crons.len(), 3);
        assert!(!g.crons[0].unique && g.crons[1].unique);
        assert_eq!(g.crons[2].harakiri, Some(9));
        assert_eq!(g.touch_signals, [(PathBuf::from("/tmp/t"), 7)]);
        assert_eq!(g.farms[0].mules, [1, 2]);
        assert_eq!(g.mule_harakiri, Duration::from_secs(30));
        assert_eq!((g.mule_msg_size, g.mule_msg_recv_size), (1024, 4096));
        assert_eq!(g.signal_bufsize, 2 << 20);
        assert_eq!(g.mule_reload_mercy, Duration::from_secs(5));
        assert_eq!(g.touch_mules_reload, [PathBuf::from("/tmp/m")]);
        assert_eq!(g.alarms.len(), 2);
        assert_eq!(g.alarms[1].plugin, AlarmPlugin::Mule(2));
        let order: Vec<_> = g.alarm_log.iter().map(|r| (r.negate, &*r.regex)).collect();
        assert_eq!(order, [(false, "ERROR"), (true, "IGNORED"), (false, "x")]);
        assert_eq!(g.alarm_backlog, ["a"]);
        assert_eq!(g.alarm_segfault, ["b"]);
        assert_eq!(g.alarm_freq, Duration::from_secs(10));
        assert_eq!(g.alarm_msg_size, 100);
        let d = Settings::default().signals;
        assert_eq!(d.mule_msg_recv_size, 65536);
        assert_eq!(d.alarm_freq, Duration::from_secs(3));
        assert_eq!(d.alarm_msg_size, 8192);
        assert_eq!(d.mule_reload_mercy, Duration::from_secs(60));
    }

    #[test]
    fn signal_option_errors() {
        for (args, needle) in [
            (
                &["--timer", "300 1"][..],
                "invalid value '300 1' for option 'timer' (from command line argument 1): \
                 expected a signal number from 0 to 255, not '300'",
            ),
            (
                &["--cron", "61 -1 -1 -1 -1 x"],
                "for option 'cron' (from command line argument 1): expected minute to be",
            ),
            (
                &["--mules", "1", "--farm", "f:1,2"],
                "invalid value 'f:1,2' for option 'farm' (from command line argument 3): \
                 expected mule ids from 1 to 1, the number of mules (not 2)",
            ),
            (
                &["--farm", "f:1"],
                "from 1 to 0, the number of mules (not 1)",
            ),
            (
                &["--mules", "2", "--farm", "f:1", "--farm", "f:2"],
                "expected a farm name not used yet ('f' is)",
            ),
            (
                &["--alarm", "a log:", "--alarm", "a log:"],
                "expected an alarm name not used yet ('a' is)",
            ),
            (
                &["--alarm", "a pager:1"],
                "expected one of the alarm plugins cmd, signal, mule, log, not 'pager'",
            ),
            (
                &["--alarm", "a mule:1"],
                "expected mule:N with N from 0 (any mule) to 0",
            ),
            (
                &["--alarm", "a log:", "--alarm-log", "a,b x"],
                "invalid value 'a,b x' for option 'alarm-log' (from command line argument 3): \
                 expected names of alarms defined with 'alarm' ('b' is none)",
            ),
            (
                &["--not-alarm-log", "z x"],
                "for option 'not-alarm-log' (from command line argument 1): expected names",
            ),
            (&["--alarm-log", "a ("], "a valid regular expression"),
            (&["--alarm-segfault", "z"], "('z' is none)"),
            (
                &["--alarm-listen-queue", "z"],
                "option 'alarm-listen-queue'",
            ),
            (&["--mule-msg-recv-size", "0"], "a size from 1 to"),
        ] {
            let e = load_err(args);
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    /// Every supported option reaches a real arm of [`apply`] (the fallback asserts).
    #[test]
    fn every_supported_option_is_applied() {
        for def in OPTIONS.iter().filter(|d| d.status == Status::Supported) {
            let value = match def.kind {
                Kind::Mode => "660",
                Kind::List if def.name == "plugins" => "python3",
                Kind::List if def.name == "mount" || def.name == "env" => "a=b",
                Kind::List if def.name == "sharedarea" => "1",
                Kind::List if def.name == "cache2" => "name=a,items=1",
                Kind::List if def.name.starts_with("static-map") => "/s=/srv/s",
                Kind::List if def.name == "static-expires-type" => "text/css=60",
                Kind::List if def.name.starts_with("static-expires") => "\\.css$ 60",
                Kind::List if def.name.contains("timer") => "1 10",
                Kind::List if def.name.contains("cron2") => "minute=1 true",
                Kind::List if def.name.contains("cron") => "-1 -1 -1 -1 -1 true",
                Kind::List if def.name == "touch-signal" => "/tmp/x 1",
                Kind::List if def.name == "farm" => "f:1",
                Kind::List if def.name == "alarm" => "a log:x",
                Kind::List if def.name.ends_with("alarm-log") => "a x",
                Kind::Int | Kind::Size | Kind::Seconds => "10",
                _ => "x",
            };
            let opt = RawOpt::for_test(def, value);
            let mut s = Settings::default();
            apply(&mut s, def, &opt, &mut None).unwrap();
        }
    }
}
