//! Values of the signal-framework options: timers, command crons, `touch-signal`, mule farms
//! and alarms. Each parser takes one option value and returns the typed value, or on error
//! what was expected (the high layer adds the option name, the value and its source).
//!
//! These are plain types: the signal crate, the master and the mules read them from
//! [`crate::Settings::signals`].

use std::path::PathBuf;
use std::time::Duration;

/// One `timer` or `rbtimer`: route `signum` every `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerSpec {
    /// The uWSGI signal routed at each expiry.
    pub signum: u8,
    /// The period (at least one second).
    pub period: Duration,
    /// `rbtimer`/`signal-rbtimer` (one-second resolution in the master) rather than
    /// `timer`/`signal-timer`.
    pub rb: bool,
}

/// The five calendar fields of a cron entry. Each is `-1` (any value), `-N` (values that
/// are multiples of N) or an exact value: minute 0-59, hour 0-23, day 1-31, month 1-12,
/// weekday 0-7 (0 and 7 are Sunday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronSpec {
    /// Minute of the hour.
    pub minute: i32,
    /// Hour of the day.
    pub hour: i32,
    /// Day of the month.
    pub day: i32,
    /// Month, 1 to 12.
    pub month: i32,
    /// Day of the week, 0 (Sunday) to 6; 7 is Sunday too.
    pub weekday: i32,
}

impl CronSpec {
    /// Every minute: all fields `-1`.
    pub const ANY: CronSpec = CronSpec {
        minute: -1,
        hour: -1,
        day: -1,
        month: -1,
        weekday: -1,
    };

    /// Checks each field against its range (negative values are always accepted). The
    /// error names the first field out of range.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value, min, max) in [
            ("minute", self.minute, 0, 59),
            ("hour", self.hour, 0, 23),
            ("day", self.day, 1, 31),
            ("month", self.month, 1, 12),
            ("weekday", self.weekday, 0, 7),
        ] {
            if value >= 0 && !(min..=max).contains(&value) {
                return Err(format!(
                    "{name} to be -1 (any), -N (every N) or {min} to {max}, not {value}"
                ));
            }
        }
        Ok(())
    }
}

/// A shell command the master runs on a calendar (`cron`, `unique-cron`, `cron2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandCron {
    /// When.
    pub spec: CronSpec,
    /// The command, run with `/bin/sh -c`.
    pub command: String,
    /// `unique-cron` / `unique=1`: not started again while the previous run is alive.
    pub unique: bool,
    /// `harakiri=N` (cron2): the run is killed after N seconds (`None`: no limit).
    pub harakiri: Option<u64>,
}

/// A mule farm (`farm NAME:1,2,...`): mules reading one shared message queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FarmSpec {
    /// The farm's name (`farm_NAME` signal target, `farm_msg(NAME, ...)`).
    pub name: String,
    /// Member mule ids, 1-based, each once, in the order given.
    pub mules: Vec<u32>,
}

/// What an alarm does when raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmPlugin {
    /// `cmd:COMMAND`: run the shell command with the alarm message on its stdin.
    Cmd(String),
    /// `signal:N`: route uWSGI signal N.
    Signal(u8),
    /// `mule:N`: send the message to mule N (0: the shared mule queue).
    Mule(u32),
    /// `log:PREFIX`: log `ALARM: PREFIX message`.
    Log(String),
}

/// One `alarm NAME PLUGIN:ARGS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmSpec {
    /// The alarm's name, as triggers refer to it.
    pub name: String,
    /// What it does.
    pub plugin: AlarmPlugin,
}

/// One `alarm-log` (or, with `negate`, `not-alarm-log`) rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmLogRule {
    /// The alarms raised when a log line matches.
    pub alarms: Vec<String>,
    /// The regular expression (validated), matched anywhere in the line.
    pub regex: String,
    /// `not-alarm-log`: a matching line raises nothing and stops later rules.
    pub negate: bool,
}

/// A signal number, 0 to 255.
pub fn parse_signum(text: &str) -> Result<u8, String> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("a signal number from 0 to 255, not '{t}'"));
    }
    t.parse()
        .map_err(|_| format!("a signal number from 0 to 255, not '{t}'"))
}

/// `timer` / `rbtimer`: `SIG SECS`, SECS at least 1.
pub fn parse_timer(text: &str, rb: bool) -> Result<TimerSpec, String> {
    let expected = "SIGNAL SECONDS (such as '1 30')";
    let mut words = text.split_whitespace();
    let (Some(sig), Some(secs), None) = (words.next(), words.next(), words.next()) else {
        return Err(expected.to_string());
    };
    let signum = parse_signum(sig)?;
    let period = secs
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0 && secs.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("a period of at least 1 second, not '{secs}'"))?;
    Ok(TimerSpec {
        signum,
        period: Duration::from_secs(period),
        rb,
    })
}

fn cron_field(name: &str, text: &str) -> Result<i32, String> {
    text.parse::<i32>()
        .map_err(|_| format!("{name} to be an integer (-1: any, -N: every N), not '{text}'"))
}

/// `cron` / `unique-cron`: `MIN HOUR DAY MONTH WEEKDAY COMMAND`.
pub fn parse_cron(text: &str, unique: bool) -> Result<CommandCron, String> {
    let expected = "MINUTE HOUR DAY MONTH WEEKDAY COMMAND (-1: any, -N: every N)";
    let mut rest = text.trim_start();
    let mut fields = [0i32; 5];
    for (i, name) in ["minute", "hour", "day", "month", "weekday"]
        .iter()
        .enumerate()
    {
        let end = rest.find(char::is_whitespace).ok_or(expected)?;
        fields[i] = cron_field(name, &rest[..end])?;
        rest = rest[end..].trim_start();
    }
    let command = rest.trim_end();
    if command.is_empty() {
        return Err(expected.to_string());
    }
    let spec = CronSpec {
        minute: fields[0],
        hour: fields[1],
        day: fields[2],
        month: fields[3],
        weekday: fields[4],
    };
    spec.validate()?;
    Ok(CommandCron {
        spec,
        command: command.to_string(),
        unique,
        harakiri: None,
    })
}

/// `cron2`: `minute=M,hour=H,day=D,month=M,week=W,unique=0|1,harakiri=N COMMAND`; every key
/// is optional (missing calendar fields are `-1`).
pub fn parse_cron2(text: &str) -> Result<CommandCron, String> {
    let expected = "KEY=VALUE[,KEY=VALUE...] COMMAND (keys: minute, hour, day, month, week, \
                    unique, harakiri)";
    let t = text.trim();
    let (keys, command) = t.split_once(char::is_whitespace).ok_or(expected)?;
    let command = command.trim();
    if command.is_empty() || !keys.contains('=') {
        return Err(expected.to_string());
    }
    let mut cron = CommandCron {
        spec: CronSpec::ANY,
        command: command.to_string(),
        unique: false,
        harakiri: None,
    };
    for pair in keys.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or(expected)?;
        match k {
            "minute" => cron.spec.minute = cron_field(k, v)?,
            "hour" => cron.spec.hour = cron_field(k, v)?,
            "day" => cron.spec.day = cron_field(k, v)?,
            "month" => cron.spec.month = cron_field(k, v)?,
            "week" => cron.spec.weekday = cron_field(k, v)?,
            "unique" => cron.unique = !matches!(v, "0" | "false" | "off" | "no"),
            "harakiri" => {
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("harakiri to be a number of seconds, not '{v}'"))?;
                cron.harakiri = (secs > 0).then_some(secs);
            }
            "legion" => return Err("no legion key: legions are not implemented".to_string()),
            other => return Err(format!("cron2 keys only, and '{other}' is none")),
        }
    }
    cron.spec.validate()?;
    Ok(cron)
}

/// `touch-signal`: `FILE SIG` (the last space separates them, so the path may hold spaces).
pub fn parse_touch_signal(text: &str) -> Result<(PathBuf, u8), String> {
    let expected = "FILE SIGNAL (such as '/tmp/poke 17')";
    let t = text.trim();
    let (file, sig) = t.rsplit_once(char::is_whitespace).ok_or(expected)?;
    let file = file.trim_end();
    if file.is_empty() {
        return Err(expected.to_string());
    }
    Ok((PathBuf::from(file), parse_signum(sig)?))
}

/// `farm`: `NAME:ID[,ID...]` with 1-based mule ids (checked against the mule count once
/// every option is read). Repeated ids count once.
pub fn parse_farm(text: &str) -> Result<FarmSpec, String> {
    let expected = "NAME:MULE[,MULE...] (mule ids from 1)";
    let (name, ids) = text.trim().split_once(':').ok_or(expected)?;
    let name = name.trim();
    if name.is_empty() || name.len() > 255 {
        return Err(expected.to_string());
    }
    let mut mules = Vec::new();
    for id in ids.split(',').map(str::trim) {
        let n = id
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1 && id.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("mule ids from 1, not '{id}'"))?;
        if !mules.contains(&n) {
            mules.push(n);
        }
    }
    Ok(FarmSpec {
        name: name.to_string(),
        mules,
    })
}

/// `alarm`: `NAME PLUGIN:ARGS` (the first space ends the name, the first colon after it
/// ends the plugin name).
pub fn parse_alarm(text: &str) -> Result<AlarmSpec, String> {
    let expected = "NAME PLUGIN:ARGS (plugins: cmd, signal, mule, log)";
    let t = text.trim();
    let (name, rest) = t.split_once(char::is_whitespace).ok_or(expected)?;
    let (plugin, args) = rest.trim_start().split_once(':').ok_or(expected)?;
    let plugin = match plugin {
        "cmd" => {
            if args.trim().is_empty() {
                return Err("cmd:COMMAND with a command".to_string());
            }
            AlarmPlugin::Cmd(args.to_string())
        }
        "signal" => AlarmPlugin::Signal(parse_signum(args)?),
        "mule" => {
            let a = args.trim();
            AlarmPlugin::Mule(
                a.parse()
                    .ok()
                    .filter(|_| a.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("mule:N with a mule id (0: any mule), not '{a}'"))?,
            )
        }
        "log" => AlarmPlugin::Log(args.to_string()),
        "curl" | "xmpp" | "speech" | "airbrake" => {
            return Err(format!(
                "one of the alarm plugins cmd, signal, mule, log ('{plugin}' is not available)"
            ))
        }
        other => {
            return Err(format!(
                "one of the alarm plugins cmd, signal, mule, log, not '{other}'"
            ))
        }
    };
    Ok(AlarmSpec {
        name: name.to_string(),
        plugin,
    })
}

/// `alarm-log` / `not-alarm-log`: `NAME[,NAME...] REGEXP` (the first space ends the names).
/// The regular expression is compiled here to validate it; alarm names are checked once
/// every option is read.
pub fn parse_alarm_log(text: &str, negate: bool) -> Result<AlarmLogRule, String> {
    let expected = "NAME[,NAME...] REGEXP";
    let t = text.trim();
    let (names, regex) = t.split_once(char::is_whitespace).ok_or(expected)?;
    let regex = regex.trim_start();
    let alarms: Vec<String> = names
        .split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    if alarms.is_empty() || regex.is_empty() {
        return Err(expected.to_string());
    }
    regex::Regex::new(regex).map_err(|e| format!("a valid regular expression ({e})"))?;
    Ok(AlarmLogRule {
        alarms,
        regex: regex.to_string(),
        negate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(m: i32, h: i32, d: i32, mo: i32, w: i32) -> CronSpec {
        CronSpec {
            minute: m,
            hour: h,
            day: d,
            month: mo,
            weekday: w,
        }
    }

    #[test]
    fn timers() {
        assert_eq!(
            parse_timer("17 30", false),
            Ok(TimerSpec {
                signum: 17,
                period: Duration::from_secs(30),
                rb: false
            })
        );
        assert!(parse_timer(" 0   1 ", true).unwrap().rb);
        assert_eq!(parse_timer("255 1", false).unwrap().signum, 255);
        for (bad, needle) in [
            ("256 1", "signal number from 0 to 255, not '256'"),
            ("-1 1", "not '-1'"),
            ("x 1", "not 'x'"),
            ("1 0", "at least 1 second, not '0'"),
            ("1 -5", "not '-5'"),
            ("1 1.5", "not '1.5'"),
            ("1", "SIGNAL SECONDS"),
            ("1 2 3", "SIGNAL SECONDS"),
            ("", "SIGNAL SECONDS"),
        ] {
            let e = parse_timer(bad, false).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn crons() {
        let c = parse_cron("0 -2 -1 -1 -1 /bin/echo hello  world", false).unwrap();
        assert_eq!(c.spec, cron(0, -2, -1, -1, -1));
        assert_eq!(c.command, "/bin/echo hello  world");
        assert!(!c.unique && c.harakiri.is_none());
        let c = parse_cron("59 23 31 12 7 true", true).unwrap();
        assert_eq!(c.spec, cron(59, 23, 31, 12, 7));
        assert!(c.unique);
        for (bad, needle) in [
            (
                "60 -1 -1 -1 -1 x",
                "minute to be -1 (any), -N (every N) or 0 to 59, not 60",
            ),
            ("-1 24 -1 -1 -1 x", "hour to be"),
            ("-1 -1 0 -1 -1 x", "day to be"),
            ("-1 -1 -1 13 -1 x", "month to be"),
            ("-1 -1 -1 0 -1 x", "month to be"),
            ("-1 -1 -1 -1 8 x", "weekday to be"),
            (
                "* -1 -1 -1 -1 x",
                "minute to be an integer (-1: any, -N: every N), not '*'",
            ),
            ("-1 -1 -1 -1 -1", "MINUTE HOUR DAY MONTH WEEKDAY COMMAND"),
            ("-1 -1 -1 -1 -1   ", "MINUTE HOUR DAY MONTH WEEKDAY COMMAND"),
            ("-1 -1", "MINUTE HOUR DAY MONTH WEEKDAY COMMAND"),
        ] {
            let e = parse_cron(bad, false).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn cron2s() {
        let c = parse_cron2("minute=-5,hour=3,unique=1,harakiri=30 touch /tmp/x y").unwrap();
        assert_eq!(c.spec, cron(-5, 3, -1, -1, -1));
        assert_eq!(c.command, "touch /tmp/x y");
        assert!(c.unique);
        assert_eq!(c.harakiri, Some(30));
        let c = parse_cron2("day=1,month=2,week=0,unique=0,harakiri=0 cmd").unwrap();
        assert_eq!(c.spec, cron(-1, -1, 1, 2, 0));
        assert!(!c.unique && c.harakiri.is_none());
        for (bad, needle) in [
            ("minute=60 x", "minute to be"),
            ("minute=x x", "minute to be an integer"),
            ("second=1 x", "cron2 keys only, and 'second' is none"),
            ("legion=a x", "legions are not implemented"),
            ("minute=1", "KEY=VALUE"),
            ("/bin/true now", "KEY=VALUE"),
            (
                "harakiri=-1 x",
                "harakiri to be a number of seconds, not '-1'",
            ),
            ("minute x", "KEY=VALUE"),
        ] {
            let e = parse_cron2(bad).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn touch_signals() {
        assert_eq!(
            parse_touch_signal("/tmp/a b 17"),
            Ok((PathBuf::from("/tmp/a b"), 17))
        );
        for bad in ["/tmp/a", "/tmp/a 256", "/tmp/a x", " 3", ""] {
            assert!(parse_touch_signal(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn farms() {
        assert_eq!(
            parse_farm("jobs:1, 3,1"),
            Ok(FarmSpec {
                name: "jobs".into(),
                mules: vec![1, 3]
            })
        );
        for (bad, needle) in [
            ("jobs", "NAME:MULE"),
            (":1", "NAME:MULE"),
            ("jobs:", "mule ids from 1, not ''"),
            ("jobs:0", "mule ids from 1, not '0'"),
            ("jobs:1,x", "not 'x'"),
            ("jobs:-1", "not '-1'"),
        ] {
            let e = parse_farm(bad).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn alarms() {
        let a = parse_alarm("wake cmd:echo a:b | mail x").unwrap();
        assert_eq!(a.name, "wake");
        assert_eq!(a.plugin, AlarmPlugin::Cmd("echo a:b | mail x".into()));
        assert_eq!(
            parse_alarm("s signal:17").unwrap().plugin,
            AlarmPlugin::Signal(17)
        );
        assert_eq!(
            parse_alarm("m mule:0").unwrap().plugin,
            AlarmPlugin::Mule(0)
        );
        assert_eq!(
            parse_alarm("l log:DISK").unwrap().plugin,
            AlarmPlugin::Log("DISK".into())
        );
        assert_eq!(
            parse_alarm("l log:").unwrap().plugin,
            AlarmPlugin::Log(String::new())
        );
        for (bad, needle) in [
            ("x", "NAME PLUGIN:ARGS"),
            ("x cmd", "NAME PLUGIN:ARGS"),
            ("x cmd:", "cmd:COMMAND"),
            ("x signal:300", "not '300'"),
            ("x mule:a", "mule:N with a mule id (0: any mule), not 'a'"),
            ("x pager:123", "not 'pager'"),
            ("x curl:http://a", "'curl' is not available"),
        ] {
            let e = parse_alarm(bad).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn alarm_logs() {
        let r = parse_alarm_log("a,b  disk (full|gone)", false).unwrap();
        assert_eq!(r.alarms, ["a", "b"]);
        assert_eq!(r.regex, "disk (full|gone)");
        assert!(!r.negate);
        assert!(parse_alarm_log("a x", true).unwrap().negate);
        for (bad, needle) in [
            ("a", "NAME[,NAME...] REGEXP"),
            (", x", "NAME[,NAME...] REGEXP"),
            ("a (", "a valid regular expression"),
        ] {
            let e = parse_alarm_log(bad, false).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }
}
