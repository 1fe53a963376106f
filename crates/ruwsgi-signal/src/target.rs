//! Signal targets: where the master delivers a registered signal, as named by the target
//! string given to `register_signal`.

use std::fmt;

/// Where the master delivers a signal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// `""`, `worker`, `worker0`: the shared worker channel (whichever worker reads first).
    AnyWorker,
    /// `workers`: every worker's own channel.
    Workers,
    /// `active-workers`: the own channel of every running, not suspended worker.
    ActiveWorkers,
    /// `workerN` (N from 1): worker N's own channel.
    Worker(u32),
    /// `mule`, `mule0`: the shared mule channel (whichever mule reads first).
    AnyMule,
    /// `mules`: every mule's own channel.
    Mules,
    /// `muleN` (N from 1): mule N's own channel.
    Mule(u32),
    /// `farm_NAME`: the channel of the farm NAME (whichever member reads first).
    Farm(String),
    /// `farmN` (N from 1): the Nth farm in configuration order.
    FarmIndex(u32),
    /// `spooler`: the channel shared by the spooler processes.
    Spooler,
    /// `subscribed`: accepted, delivers nothing.
    Subscribed,
}

/// A target string that names no [`Target`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported signal target '{target}'")]
pub struct TargetError {
    /// The target as given.
    pub target: String,
}

/// `Some(n)` when `text` is a non-empty run of ASCII digits that fits in a `u32`.
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl Target {
    /// Parse a target string as `register_signal` takes it.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let target = match text {
            "" | "worker" => Some(Target::AnyWorker),
            "workers" => Some(Target::Workers),
            "active-workers" => Some(Target::ActiveWorkers),
            "mule" => Some(Target::AnyMule),
            "mules" => Some(Target::Mules),
            "spooler" => Some(Target::Spooler),
            "subscribed" => Some(Target::Subscribed),
            _ => {
                if let Some(name) = text.strip_prefix("farm_") {
                    (!name.is_empty()).then(|| Target::Farm(name.to_string()))
                } else if let Some(n) = text.strip_prefix("farm") {
                    number(n).filter(|n| *n > 0).map(Target::FarmIndex)
                } else if let Some(n) = text.strip_prefix("worker") {
                    number(n).map(|n| match n {
                        0 => Target::AnyWorker,
                        n => Target::Worker(n),
                    })
                } else if let Some(n) = text.strip_prefix("mule") {
                    number(n).map(|n| match n {
                        0 => Target::AnyMule,
                        n => Target::Mule(n),
                    })
                } else {
                    None
                }
            }
        };
        target.ok_or_else(|| TargetError {
            target: text.to_string(),
        })
    }
}

impl fmt::Display for Target {
    /// The canonical target string ([`Target::parse`] gives the same target back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::AnyWorker => f.write_str("worker"),
            Target::Workers => f.write_str("workers"),
            Target::ActiveWorkers => f.write_str("active-workers"),
            Target::Worker(n) => write!(f, "worker{n}"),
            Target::AnyMule => f.write_str("mule"),
            Target::Mules => f.write_str("mules"),
            Target::Mule(n) => write!(f, "mule{n}"),
            Target::Farm(name) => write!(f, "farm_{name}"),
            Target::FarmIndex(n) => write!(f, "farm{n}"),
            Target::Spooler => f.write_str("spooler"),
            Target::Subscribed => f.write_str("subscribed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_form() {
        for (text, target) in [
            ("", Target::AnyWorker),
            ("worker", Target::AnyWorker),
            ("worker0", Target::AnyWorker),
            ("workers", Target::Workers),
            ("active-workers", Target::ActiveWorkers),
            ("worker3", Target::Worker(3)),
            ("mule", Target::AnyMule),
            ("mule0", Target::AnyMule),
            ("mules", Target::Mules),
            ("mule12", Target::Mule(12)),
            ("farm_jobs", Target::Farm("jobs".into())),
            ("farm_1", Target::Farm("1".into())),
            ("farm2", Target::FarmIndex(2)),
            ("spooler", Target::Spooler),
            ("subscribed", Target::Subscribed),
        ] {
            assert_eq!(Target::parse(text), Ok(target.clone()), "{text:?}");
            assert_eq!(Target::parse(&target.to_string()), Ok(target));
        }
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for text in [
            "spoolers",
            "cluster",
            "subscribe",
            "farm",
            "farm_",
            "farm0",
            "worker-1",
            "worker+1",
            "workerx",
            "mule 1",
            "Worker",
            "worker99999999999",
        ] {
            let e = Target::parse(text).unwrap_err();
            assert_eq!(e.target, text);
            assert_eq!(e.to_string(), format!("unsupported signal target '{text}'"));
        }
    }
}
