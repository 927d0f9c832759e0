//! The run's report: the handler's response, its log line, EMF metrics and the notifications.

use chrono::{DateTime, Utc};
use openclaw_ops_shared::metrics::Metrics;
use openclaw_ops_shared::notification::{Notification, Severity, Table};
use openclaw_ops_shared::run::RunReport;
use serde::Serialize;

use crate::FUNCTION;
use crate::apply::{Outcome, signal_words};
use crate::aws::ec2::Purchase;
use crate::event::Event;
use crate::plan::{Clear, Held, Plan, Prepare, Replace, Signal, VolumeStep};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub function: &'static str,
    pub event: Event,
    pub dry_run: bool,
    pub plan: Plan,
    /// `None` when nothing was applied (dry run, or nothing to do).
    pub outcome: Option<Outcome>,
}

impl Report {
    pub fn metrics(&self) -> Metrics {
        let outcome = self.outcome.as_ref();
        // Counted once, by the delivery that launched: another that found its launch stops there.
        let outcome = outcome.filter(|o| !o.left_to_another_delivery);
        let replaced = matches!(self.plan, Plan::Replace(_)) && outcome.is_some_and(|o| o.replacement.is_some());
        let mut m = Metrics::new(FUNCTION)
            .count(
                "SpotWarnings",
                usize::from(
                    matches!(&self.plan, Plan::Prepare(p) if matches!(p.signal, Signal::Warning(_)) && !p.duplicate),
                ),
            )
            .count("Replacements", usize::from(replaced))
            .count("OnDemandFallbacks", usize::from(outcome.is_some_and(|o| o.purchase == Some(Purchase::OnDemand))))
            .count("RecoveryFailures", outcome.map_or(0, |o| o.failed.len()));
        if let (Plan::Replace(_), Some(o)) = (&self.plan, outcome)
            && let (Some(first), Some(last)) = (o.timeline.first(), o.timeline.last())
        {
            m = m.value("RecoverySeconds", (last.at - first.at).num_milliseconds() as f64 / 1000.0, "Seconds");
        }
        m
    }

    /// What a human should hear at the end of the run.
    pub fn notification(&self) -> Option<Notification> {
        match &self.plan {
            Plan::Ignore { notify: false, .. } => None,
            Plan::Ignore { instance_id, reason, notify: true } => Some(
                Notification::new(
                    FUNCTION,
                    format!("{FUNCTION}:{instance_id}:{}:ignored", self.event.name()),
                    Severity::Warning,
                    format!("Spot interruption of {instance_id}: not replaced"),
                )
                .text(reason.clone())
                .field("instance", instance_id.clone()),
            ),
            Plan::Prepare(p) => self.prepare_failures(p),
            // The delivery that launched reports the recovery; a second report would only race it.
            Plan::Replace(_) if self.outcome.as_ref().is_some_and(|o| o.left_to_another_delivery) => None,
            Plan::Replace(r) => Some(self.replaced(r)),
            Plan::Held(h) => Some(Self::held(h, self.dry_run)),
            Plan::Clear(c) => self.clear_failed(c),
        }
    }

    /// A routine clear is not news; one that failed leaves a record that makes the next real
    /// warning look like a repeated delivery, which saves nothing.
    fn clear_failed(&self, c: &Clear) -> Option<Notification> {
        let outcome = self.outcome.as_ref()?;
        let failure = outcome.failed.first()?;
        let keys: Vec<&str> = c.tags.iter().map(|(k, _)| k.as_str()).collect();
        Some(
            Notification::new(
                FUNCTION,
                format!("{FUNCTION}:{}:clear:failed", c.instance_id),
                Severity::Warning,
                format!("Old Spot records on {} not cleared", c.gateway),
            )
            .text(format!(
                "{} runs again, but {} could not be deleted: the next Spot warning would be taken for a repeated \
                 delivery and nothing would be saved. Delete the tag(s) by hand.\n{}",
                c.instance_id,
                keys.join(" and "),
                failure.error
            ))
            .field("instance", c.instance_id.clone()),
        )
    }

    /// Nothing was changed: the data is live on another instance, and only a human knows why.
    fn held(h: &Held, dry_run: bool) -> Notification {
        let mut text = format!(
            "{} was interrupted, but its data volume {} is {} to {}. Nothing was launched, restored or moved: a \
             replacement beside it would run on a stale copy of the data. Decide what serves the gateway: \
             detach the volume from {} (spot-recovery's next run moves it), or retire {} by hand.",
            h.old_instance, h.volume_id, h.attachment_state, h.holder, h.holder, h.old_instance
        );
        if dry_run {
            text.push_str(" (dry run)");
        }
        Notification::new(
            FUNCTION,
            format!("{FUNCTION}:{}:held", h.old_instance),
            Severity::Critical,
            format!("Gateway {} NOT replaced: its data volume is attached to {}", h.gateway, h.holder),
        )
        .text(text)
        .field("old instance", h.old_instance.clone())
        .field("data volume", h.volume_id.clone())
        .field("held by", h.holder.clone())
    }

    /// Sent at once, beside the warning's other steps: the two minutes are for them, not for waiting.
    pub fn early_notice(event: &Event, p: &Prepare, dry_run: bool) -> Option<Notification> {
        if p.duplicate {
            return None;
        }
        let (severity, title) = match p.signal {
            Signal::Warning(action) => (
                Severity::Warning,
                format!(
                    "Spot interruption in ~2 min: {} will be {}",
                    p.gateway,
                    match action {
                        crate::event::InstanceAction::Terminate => "terminated",
                        crate::event::InstanceAction::Stop => "stopped",
                        crate::event::InstanceAction::Hibernate => "hibernated",
                    }
                ),
            ),
            Signal::Rebalance => (Severity::Info, format!("Spot rebalance recommendation for {}", p.gateway)),
        };
        let mut steps = Vec::new();
        if let Some(s) = &p.snapshot {
            steps.push(format!("snapshot of {}", s.volume_id));
        }
        if let Some(b) = &p.backup {
            steps.push(format!("backup to {}", b.archive_key));
        }
        if p.early_launch.is_some() {
            steps.push("starting the replacement early".to_owned());
        }
        let mut text =
            if steps.is_empty() { "Nothing to save.".to_owned() } else { format!("Now: {}.", steps.join("; ")) };
        if dry_run {
            text.push_str(" (dry run: nothing is changed)");
        }
        for note in &p.notes {
            text.push_str(&format!("\n{note}"));
        }
        Some(
            Notification::new(
                FUNCTION,
                format!("{FUNCTION}:{}:{}:notice", p.instance_id, event.name()),
                severity,
                title,
            )
            .text(text)
            .field("instance", p.instance_id.clone())
            .field("at", p.at.clone()),
        )
    }

    fn prepare_failures(&self, p: &Prepare) -> Option<Notification> {
        let outcome = self.outcome.as_ref()?;
        if outcome.failed.is_empty() {
            return None;
        }
        let mut n = Notification::new(
            FUNCTION,
            format!("{FUNCTION}:{}:{}:failed", p.instance_id, self.event.name()),
            Severity::Critical,
            format!("Last-minute protection of {} incomplete", p.gateway),
        )
        .text(format!("On the {}, some steps failed; the data volume may hold the only copy.", signal_words(p)));
        for f in &outcome.failed {
            n = n.field(f.step, f.error.to_string());
        }
        Some(n.table(timeline_table(&outcome.timeline)))
    }

    fn replaced(&self, r: &Replace) -> Notification {
        let id = format!("{FUNCTION}:{}:replace", r.old_instance);
        let Some(outcome) = &self.outcome else {
            return Notification::new(
                FUNCTION,
                id,
                Severity::Info,
                format!("Dry run: {} would be replaced", r.gateway),
            )
            .text(format!("{} was {} ({}); nothing was changed.", r.old_instance, r.old_state, r.evidence));
        };
        let trouble = !outcome.failed.is_empty() || outcome.restored_from.is_some();
        let severity = if trouble { Severity::Critical } else { Severity::Info };
        // Only a healthy target is seen serving within the run; anything else waits for the
        // follow-up check, and is never called recovered here.
        let seen_serving = outcome.target_health.as_deref() == Some("healthy");
        let title = match (&outcome.replacement, outcome.failed.is_empty(), seen_serving) {
            (Some(new), true, true) => format!("Gateway {} replaced after a Spot interruption: {new}", r.gateway),
            (Some(new), true, false) => {
                format!("Gateway {} replaced, not yet seen serving, after a Spot interruption: {new}", r.gateway)
            }
            (_, _, _) => format!("Gateway {} replacement INCOMPLETE after a Spot interruption", r.gateway),
        };
        let mut text = format!("{} was {} ({}).", r.old_instance, r.old_state, r.evidence);
        match &outcome.follow_up {
            Some(f) => text.push_str(&format!(
                " A follow-up check at {} confirms it serves, or escalates.",
                f.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )),
            None if outcome.replacement.is_some() && !seen_serving && outcome.failed.is_empty() => text.push_str(
                " No follow-up check is configured (FOLLOW_UP_SCHEDULE_GROUP): confirm by hand that it serves.",
            ),
            None => {}
        }
        if let Some(snapshot) = &outcome.restored_from {
            let age = match &r.volume {
                VolumeStep::Restore { taken_at, age_seconds, .. } => {
                    format!(", taken at {taken_at}: its data is {} older than the interruption", duration(*age_seconds))
                }
                _ => String::new(),
            };
            text.push_str(&format!(
                " The data volume was gone: a new one was made from snapshot {snapshot}{age}; what changed after it \
                 is lost."
            ));
        }
        for f in &outcome.failed {
            text.push_str(&format!("\n{} failed: {}", f.step, f.error));
        }
        let mut n =
            Notification::new(FUNCTION, id, severity, title).text(text).field("old instance", r.old_instance.clone());
        if let Some(new) = &outcome.replacement {
            n = n.field("replacement", new.clone());
        }
        if let Some(p) = outcome.purchase {
            n = n.field("purchase option", p.as_str());
        }
        if let Some(v) = &outcome.volume_id {
            n = n.field("data volume", v.clone());
        }
        if let Some(a) = &outcome.address {
            n = n.field("address", a.clone());
        }
        if let Some(h) = &outcome.target_health {
            n = n.field("target health", h.clone());
        }
        n = n.field("seen serving", if seen_serving { "yes" } else { "not yet" });
        if let Some(f) = &outcome.follow_up {
            n = n.field("follow-up", f.name.clone());
        }
        n.table(timeline_table(&outcome.timeline))
    }
}

impl RunReport for Report {
    fn summary(&self) -> String {
        format!("spot-recovery run: {} for {}", self.event.name(), self.event.instance_id())
    }

    fn metrics(&self) -> Vec<Metrics> {
        vec![Report::metrics(self)]
    }

    fn failure(&self) -> Option<String> {
        let failed = &self.outcome.as_ref()?.failed;
        let first = failed.first()?;
        Some(format!("{} step(s) failed (first: {}: {})", failed.len(), first.step, first.error))
    }

    fn notifications(&self) -> Vec<Notification> {
        self.notification().into_iter().collect()
    }
}

/// `2 h 05 min`, `7 min`, `45 s`.
pub fn duration(seconds: i64) -> String {
    match seconds {
        s if s >= 3600 => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// `T+seconds` from the first entry, and what happened.
pub fn timeline_table(timeline: &[crate::apply::Step]) -> Table {
    let start: Option<DateTime<Utc>> = timeline.first().map(|s| s.at);
    let rows = timeline
        .iter()
        .map(|s| {
            let offset = start.map(|t0| (s.at - t0).num_milliseconds() as f64 / 1000.0).unwrap_or_default();
            vec![s.at.format("%H:%M:%S").to_string(), format!("T+{offset:.0}s"), s.what.clone()]
        })
        .collect();
    Table { columns: vec!["time".into(), "since".into(), "step".into()], rows }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::apply::{Failure, Step};
    use crate::config::Address;
    use crate::event::InstanceAction;
    use crate::plan::{Launch, Replacement, VolumeStep};

    fn at(s: i64) -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::seconds(s)
    }

    fn event() -> Event {
        Event::StateChange { id: "e".into(), time: at(0), instance_id: "i-old".into(), state: "terminated".into() }
    }

    fn replace_plan() -> Replace {
        Replace {
            old_instance: "i-old".into(),
            gateway: "openclaw-gateway".into(),
            old_state: "terminated".into(),
            evidence: "state reason Server.SpotInstanceTermination".into(),
            warned_at: None,
            replacement: Replacement::Launch(Launch {
                template_id: "lt-1".into(),
                template_version: "$Default".into(),
                az: "us-east-1b".into(),
                subnet_id: None,
                client_token: "t".into(),
                tags: vec![],
            }),
            volume: VolumeStep::Move { volume_id: "vol-1".into(), device: "/dev/sdf".into(), detach_from: None },
            address: Address::None,
            alarm_name_prefix: None,
            gateway_tag_key: "openclaw:role".into(),
        }
    }

    fn report(outcome: Option<Outcome>) -> Report {
        Report {
            function: FUNCTION,
            event: event(),
            dry_run: outcome.is_none(),
            plan: Plan::Replace(replace_plan()),
            outcome,
        }
    }

    fn done() -> Outcome {
        Outcome {
            timeline: vec![
                Step { at: at(0), what: "i-old terminated".into() },
                Step { at: at(42), what: "replacement launched".into() },
            ],
            replacement: Some("i-new".into()),
            purchase: Some(Purchase::OnDemand),
            volume_id: Some("vol-1".into()),
            ..Outcome::default()
        }
    }

    #[test]
    fn a_completed_replacement_is_news_with_its_timeline() {
        let r = report(Some(done()));
        let n = r.notification().unwrap();
        assert_eq!(n.severity, Severity::Info);
        assert_eq!(
            n.title,
            "Gateway openclaw-gateway replaced, not yet seen serving, after a Spot interruption: i-new"
        );
        assert_eq!(n.fields["seen serving"], "not yet");
        assert!(n.text.contains("No follow-up check is configured"), "{}", n.text);
        assert_eq!(n.fields["purchase option"], "On-Demand");
        assert_eq!(n.fields["data volume"], "vol-1");
        let table = n.table.unwrap();
        assert_eq!(table.rows[1], ["10:00:42", "T+42s", "replacement launched"]);
        assert_eq!(r.failure(), None);
        let emf = r.metrics().to_emf(at(50));
        assert_eq!((emf["Replacements"].as_f64(), emf["OnDemandFallbacks"].as_f64()), (Some(1.0), Some(1.0)));
        assert_eq!(emf["RecoverySeconds"], 42.0);

        // Only a target seen healthy makes it "replaced" without the "not yet".
        let mut o = done();
        o.target_health = Some("healthy".into());
        let n = report(Some(o)).notification().unwrap();
        assert_eq!(n.title, "Gateway openclaw-gateway replaced after a Spot interruption: i-new");
        assert_eq!(n.fields["seen serving"], "yes");
        let mut o = done();
        o.follow_up = Some(crate::aws::scheduler::Scheduled {
            name: "spot-follow-up-i-new-1".into(),
            attempt: 1,
            at: at(342),
            already: false,
        });
        let n = report(Some(o)).notification().unwrap();
        assert!(n.title.contains("not yet seen serving"), "{}", n.title);
        assert!(n.text.contains("follow-up check at 2026-11-25T10:05:42Z"), "{}", n.text);
        assert_eq!(n.fields["follow-up"], "spot-follow-up-i-new-1");
    }

    #[test]
    fn a_run_that_found_another_deliverys_launch_stays_quiet_and_counts_nothing() {
        let mut o = done();
        o.purchase = None;
        o.left_to_another_delivery = true;
        let r = report(Some(o));
        assert_eq!(r.notification(), None, "the delivery that launched reports");
        assert_eq!(r.failure(), None);
        let emf = r.metrics().to_emf(at(50));
        assert_eq!(emf["Replacements"].as_f64(), Some(0.0));
        assert!(emf.get("RecoverySeconds").is_none(), "{emf}");
    }

    #[test]
    fn a_failed_or_restored_replacement_is_critical_and_fails_the_run() {
        let mut o = done();
        o.failed.push(Failure { step: "volume", error: "AttachVolume: denied".into() });
        let r = report(Some(o));
        let n = r.notification().unwrap();
        assert_eq!(n.severity, Severity::Critical);
        assert!(n.title.contains("INCOMPLETE"), "{}", n.title);
        assert!(n.text.contains("volume failed: AttachVolume: denied"), "{}", n.text);
        assert_eq!(r.failure().unwrap(), "1 step(s) failed (first: volume: AttachVolume: denied)");

        let mut o = done();
        o.restored_from = Some("snap-1".into());
        let n = report(Some(o)).notification().unwrap();
        assert_eq!(n.severity, Severity::Critical);
        assert!(n.text.contains("snapshot snap-1"), "{}", n.text);
    }

    #[test]
    fn a_dry_run_says_what_would_happen() {
        let n = report(None).notification().unwrap();
        assert_eq!(n.severity, Severity::Info);
        assert!(n.title.starts_with("Dry run"), "{}", n.title);
    }

    #[test]
    fn nothing_to_do_is_quiet_unless_a_human_should_know() {
        let mut r = report(None);
        r.plan = Plan::Ignore { instance_id: "i-x".into(), reason: "not the gateway".into(), notify: false };
        assert_eq!(r.notification(), None);
        r.plan = Plan::Ignore { instance_id: "i-x".into(), reason: "REPLACE_ON_STOP is off".into(), notify: true };
        let n = r.notification().unwrap();
        assert_eq!((n.severity, n.text.as_str()), (Severity::Warning, "REPLACE_ON_STOP is off"));
    }

    #[test]
    fn a_routine_clear_is_quiet_and_a_failed_one_says_what_it_costs() {
        let c = crate::plan::Clear {
            instance_id: "i-old".into(),
            gateway: "openclaw-gateway".into(),
            tags: vec![("openclaw:spot-warning".into(), "2026-11-25T09:50:00Z".into())],
        };
        let mut r = report(Some(Outcome::default()));
        r.plan = Plan::Clear(c);
        assert_eq!(r.notification(), None);
        assert_eq!(r.failure(), None);
        r.outcome = Some(Outcome {
            failed: vec![Failure { step: "clear", error: "ec2:DeleteTags i-old: denied".into() }],
            ..Outcome::default()
        });
        let n = r.notification().unwrap();
        assert_eq!(n.severity, Severity::Warning);
        assert!(n.text.contains("openclaw:spot-warning") && n.text.contains("denied"), "{}", n.text);
        assert!(r.failure().unwrap().contains("clear"));
    }

    #[test]
    fn the_notice_names_what_ec2_will_do_and_is_not_repeated() {
        let mut p = Prepare {
            instance_id: "i-old".into(),
            gateway: "openclaw-gateway".into(),
            signal: Signal::Warning(InstanceAction::Hibernate),
            at: "2026-11-25T10:00:00Z".into(),
            record: ("openclaw:spot-warning".into(), "2026-11-25T10:00:00Z".into()),
            duplicate: false,
            snapshot: None,
            backup: None,
            early_launch: None,
            notes: vec!["BACKUP_BUCKET is not set: no last-minute backup".into()],
        };
        let n = Report::early_notice(&event(), &p, false).unwrap();
        assert_eq!(n.title, "Spot interruption in ~2 min: openclaw-gateway will be hibernated");
        assert_eq!(n.severity, Severity::Warning);
        assert!(n.text.contains("BACKUP_BUCKET"), "{}", n.text);
        p.duplicate = true;
        assert_eq!(Report::early_notice(&event(), &p, false), None);
    }
}
