//! Alarm triggers over log lines ([`AlarmRules`], from `alarm-log` / `not-alarm-log`) and
//! the `alarm-freq` throttle ([`Throttle`]).
//!
//! Rules are tried in configuration order. An `alarm-log` rule whose expression matches
//! raises its alarms; a `not-alarm-log` rule whose expression matches stops the evaluation
//! (alarms raised by earlier rules stay raised). Lines the alarm subsystem writes itself
//! start with [`ALARM_LOG_PREFIX`] and never match, so an alarm that logs cannot trigger
//! itself.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use regex::Regex;
use ruwsgi_config::AlarmLogRule;

/// The start of every log line the alarm subsystem writes; such lines never raise alarms.
pub const ALARM_LOG_PREFIX: &str = "[ruwsgi-alarm";

#[derive(Debug, Clone)]
struct Rule {
    alarms: Vec<String>,
    regex: Regex,
    negate: bool,
}

/// The compiled `alarm-log` / `not-alarm-log` rules.
#[derive(Debug, Clone, Default)]
pub struct AlarmRules {
    rules: Vec<Rule>,
}

impl AlarmRules {
    /// Compile the rules, in the order given.
    pub fn new(rules: &[AlarmLogRule]) -> Result<AlarmRules, regex::Error> {
        let rules = rules
            .iter()
            .map(|r| {
                Ok(Rule {
                    alarms: r.alarms.clone(),
                    regex: Regex::new(&r.regex)?,
                    negate: r.negate,
                })
            })
            .collect::<Result<_, regex::Error>>()?;
        Ok(AlarmRules { rules })
    }

    /// True when there are no rules (log lines need not be checked).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The alarms `line` raises, each once, in the order the rules name them.
    pub fn matches(&self, line: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        if line.starts_with(ALARM_LOG_PREFIX) {
            return out;
        }
        for rule in &self.rules {
            if !rule.regex.is_match(line) {
                continue;
            }
            if rule.negate {
                break;
            }
            for name in &rule.alarms {
                if !out.contains(&name.as_str()) {
                    out.push(name);
                }
            }
        }
        out
    }
}

/// `alarm-freq`: an alarm skips a message identical to the last one it sent if that was
/// less than the frequency ago.
#[derive(Debug, Clone)]
pub struct Throttle {
    freq: Duration,
    /// Per alarm: the last message sent and when.
    last: HashMap<String, (Vec<u8>, Instant)>,
}

impl Throttle {
    /// A throttle with `alarm-freq` `freq`.
    pub fn new(freq: Duration) -> Throttle {
        Throttle {
            freq,
            last: HashMap::new(),
        }
    }

    /// Whether `alarm` should send `msg` at `now`; when it should, the message is
    /// remembered as sent.
    pub fn should_send(&mut self, alarm: &str, msg: &[u8], now: Instant) -> bool {
        if let Some((last, at)) = self.last.get_mut(alarm) {
            if last.as_slice() == msg && now.saturating_duration_since(*at) < self.freq {
                return false;
            }
            last.clear();
            last.extend_from_slice(msg);
            *at = now;
            return true;
        }
        self.last.insert(alarm.to_string(), (msg.to_vec(), now));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(alarms: &[&str], regex: &str, negate: bool) -> AlarmLogRule {
        AlarmLogRule {
            alarms: alarms.iter().map(|a| a.to_string()).collect(),
            regex: regex.to_string(),
            negate,
        }
    }

    #[test]
    fn rules_in_order_with_negation() {
        let r = AlarmRules::new(&[
            rule(&["disk"], "No space", false),
            rule(&["any"], "IGNORE", true),
            rule(&["any", "disk"], "ERROR|No space", false),
        ])
        .unwrap();
        assert!(!r.is_empty());
        assert_eq!(r.matches("ERROR: boom"), ["any", "disk"]);
        assert_eq!(r.matches("No space left"), ["disk", "any"]);
        assert_eq!(r.matches("ERROR IGNORE"), Vec::<&str>::new());
        assert_eq!(r.matches("No space IGNORE"), ["disk"], "earlier rules stay");
        assert_eq!(r.matches("all fine"), Vec::<&str>::new());
        assert_eq!(
            r.matches("[ruwsgi-alarm disk] No space ERROR"),
            Vec::<&str>::new()
        );
        assert!(AlarmRules::new(&[rule(&["a"], "(", false)]).is_err());
        assert!(AlarmRules::default().matches("ERROR").is_empty());
    }

    #[test]
    fn identical_messages_are_throttled() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = Throttle::new(s * 3);
        assert!(t.should_send("a", b"x", t0));
        assert!(!t.should_send("a", b"x", t0 + s * 2));
        assert!(t.should_send("b", b"x", t0 + s * 2), "per alarm");
        assert!(t.should_send("a", b"y", t0 + s * 2), "a different message");
        assert!(
            t.should_send("a", b"x", t0 + s * 2),
            "x is no longer the last"
        );
        assert!(!t.should_send("a", b"x", t0 + s * 4));
        assert!(t.should_send("a", b"x", t0 + s * 5), "freq elapsed");
        let mut off = Throttle::new(Duration::ZERO);
        assert!(off.should_send("a", b"x", t0) && off.should_send("a", b"x", t0));
    }
}
