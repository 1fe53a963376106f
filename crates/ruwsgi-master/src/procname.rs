//! Process titles: what `ps` and `top` show for the master and each child.
//!
//! With `auto-procname` the titles are uWSGI's, word for word (`uWSGI master`,
//! `uWSGI worker 1`, `uWSGI mule 1`, `uWSGI spooler`), because monitoring checks grep for
//! them. `procname-master` names the master and `procname` every worker, over the automatic
//! names; `procname-prefix` (or `procname-prefix-spaced`, which adds a space) and
//! `procname-append` frame every title, `uwsgi.setprocname()`'s too. With none of these
//! options no title is written: every process shows the command line it was started with
//! (the children are forks of the master) and `comm` stays the binary's name.
//!
//! Writing a title is [`ruwsgi_sys::process::set_process_title`]'s business (the argv area
//! and `PR_SET_NAME`); this module only decides the text.

use ruwsgi_config::ProcessSettings;

use crate::children::ChildKind;

/// The naming options of an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcNames {
    prefix: String,
    append: String,
    auto: bool,
    workers: Option<String>,
    master: Option<String>,
}

impl ProcNames {
    /// The naming options in `p`.
    pub fn new(p: &ProcessSettings) -> ProcNames {
        ProcNames {
            prefix: p.procname_prefix.clone().unwrap_or_default(),
            append: p.procname_append.clone().unwrap_or_default(),
            auto: p.auto_procname,
            workers: p.procname.clone(),
            master: p.procname_master.clone(),
        }
    }

    /// True when some option asks for titles.
    fn any(&self) -> bool {
        self.auto
            || self.workers.is_some()
            || self.master.is_some()
            || !self.prefix.is_empty()
            || !self.append.is_empty()
    }

    /// `name` framed by the prefix and the appended text (what `uwsgi.setprocname(name)`
    /// writes).
    pub fn decorate(&self, name: &str) -> String {
        format!("{}{name}{}", self.prefix, self.append)
    }

    /// The master's title, if one is to be written: `procname-master`, else `procname`,
    /// else `uWSGI master`.
    pub fn master(&self) -> Option<String> {
        if !self.any() {
            return None;
        }
        let name = self
            .master
            .as_deref()
            .or(self.workers.as_deref())
            .unwrap_or("uWSGI master");
        Some(self.decorate(name))
    }

    /// The title of child `id` of `kind`, if one is to be written: workers take `procname`
    /// when set; otherwise `uWSGI worker N`, `uWSGI mule N`, `uWSGI spooler`. Attached
    /// daemons exec another program and get none.
    pub fn child(&self, kind: ChildKind, id: u32) -> Option<String> {
        if !self.any() {
            return None;
        }
        let name = match (kind, &self.workers) {
            (ChildKind::Worker, Some(name)) => name.clone(),
            (ChildKind::Worker, None) => format!("uWSGI worker {id}"),
            (ChildKind::Mule, _) => format!("uWSGI mule {id}"),
            (ChildKind::Spooler, _) => "uWSGI spooler".to_string(),
            (ChildKind::Daemon, _) => return None,
        };
        Some(self.decorate(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(f: impl FnOnce(&mut ProcessSettings)) -> ProcNames {
        let mut p = ProcessSettings::default();
        f(&mut p);
        ProcNames::new(&p)
    }

    #[test]
    fn no_option_no_title() {
        let n = names(|_| {});
        assert_eq!(n.master(), None);
        assert_eq!(n.child(ChildKind::Worker, 1), None);
        assert_eq!(n.decorate("x"), "x");
    }

    #[test]
    fn auto_names_are_uwsgis() {
        let n = names(|p| p.auto_procname = true);
        assert_eq!(n.master().as_deref(), Some("uWSGI master"));
        assert_eq!(
            n.child(ChildKind::Worker, 2).as_deref(),
            Some("uWSGI worker 2")
        );
        assert_eq!(n.child(ChildKind::Mule, 1).as_deref(), Some("uWSGI mule 1"));
        assert_eq!(
            n.child(ChildKind::Spooler, 1).as_deref(),
            Some("uWSGI spooler")
        );
        assert_eq!(n.child(ChildKind::Daemon, 1), None);
    }

    #[test]
    fn prefix_append_procname_and_master() {
        let n = names(|p| {
            p.auto_procname = true;
            p.procname_prefix = Some("app ".into());
            p.procname_append = Some(" [x]".into());
        });
        assert_eq!(n.master().as_deref(), Some("app uWSGI master [x]"));
        assert_eq!(
            n.child(ChildKind::Worker, 1).as_deref(),
            Some("app uWSGI worker 1 [x]")
        );
        assert_eq!(n.decorate("mine"), "app mine [x]");
        let n = names(|p| {
            p.procname = Some("web".into());
            p.procname_master = Some("boss".into());
        });
        assert_eq!(n.master().as_deref(), Some("boss"));
        assert_eq!(n.child(ChildKind::Worker, 3).as_deref(), Some("web"));
        assert_eq!(n.child(ChildKind::Mule, 1).as_deref(), Some("uWSGI mule 1"));
        let n = names(|p| p.procname = Some("web".into()));
        assert_eq!(n.master().as_deref(), Some("web"));
        let n = names(|p| p.procname_prefix = Some("p-".into()));
        assert_eq!(n.master().as_deref(), Some("p-uWSGI master"));
    }
}
