//! Tags must agree with EC2's own fields before a snapshot's tags are believed.
//!
//! Ownership and meaning are plain tags, and anyone with `ec2:CreateTags` can set them: tag a foreign
//! snapshot `openclaw:volume-id=<the gateway's volume>`, or an old snapshot `openclaw:date=<a recent
//! day>`, and a plan that believed them would delete the foreign snapshot, or the real snapshot of
//! that day as a "duplicate". EC2's own `VolumeId` and `StartTime` cannot be set by anyone: a
//! snapshot whose tags say otherwise is never deleted, never counts toward a day or the floor, and is
//! reported by id as "tags disagree with EC2".

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeDelta};
use openclaw_ops_shared::snapshot::ObservedSnapshot;
use openclaw_ops_shared::tags;

use crate::event::CLOCK_SKEW;

/// The `VolumeId` EC2 reports for a snapshot made by `CopySnapshot`: the source volume is not known.
pub const COPY_VOLUME_ID: &str = "vol-ffffffff";

/// On a copy, the snapshot it was copied from: what its `openclaw:volume-id` is checked through.
pub const SOURCE_SNAPSHOT_ID: &str = "openclaw:source-snapshot-id";

/// The longest a run takes (the function's `Timeout`): a snapshot starts at most this long after the
/// invocation began.
pub const RUN_TIME: TimeDelta = TimeDelta::seconds(900);

/// What the snapshot's tags are checked against: a snapshot's `snapshot_id`, `volume_id` as EC2
/// reports them (`ec2::Ec2::owned_snapshots` puts EC2's `VolumeId` there, not the tag).
pub struct Ec2Fields<'a> {
    by_id: BTreeMap<&'a str, &'a ObservedSnapshot>,
    /// How late after its date's end a snapshot of that date can start: the oldest a genuine
    /// scheduled event can be when it runs, plus the run itself.
    late: TimeDelta,
}

impl<'a> Ec2Fields<'a> {
    pub fn new(snapshots: &'a [ObservedSnapshot], max_event_age: TimeDelta) -> Self {
        Ec2Fields {
            by_id: snapshots.iter().map(|s| (s.snapshot_id.as_str(), s)).collect(),
            late: max_event_age + RUN_TIME + CLOCK_SKEW,
        }
    }

    /// Also looks copies' sources up among `sources` (the home region's snapshots, for the copies in
    /// the DR region: `crate::copy`).
    pub fn with_sources(mut self, sources: &'a [ObservedSnapshot]) -> Self {
        for source in sources {
            self.by_id.entry(source.snapshot_id.as_str()).or_insert(source);
        }
        self
    }

    /// The snapshot a copy was made from, when it is in view.
    fn source_of(&self, copy: &ObservedSnapshot) -> Option<&'a ObservedSnapshot> {
        if copy.volume_id != COPY_VOLUME_ID {
            return None;
        }
        copy.tags.get(SOURCE_SNAPSHOT_ID).and_then(|id| self.by_id.get(id.as_str()).copied())
    }

    /// The source volume the snapshot's tags and EC2 agree on, or why they disagree.
    pub fn check(&self, snapshot: &'a ObservedSnapshot) -> Result<&'a str, String> {
        let volume = self.volume(snapshot)?;
        if let Some(tagged) = snapshot.tags.get(tags::DATE) {
            let date = NaiveDate::parse_from_str(tagged, "%Y-%m-%d")
                .map_err(|_| format!("{} {tagged:?} is not a date", tags::DATE))?;
            let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
            let (earliest, latest) = (midnight - CLOCK_SKEW, midnight + TimeDelta::days(1) + self.late);
            if snapshot.start_time < earliest {
                return Err(format!(
                    "{} {date} but EC2's StartTime is {} (a snapshot of {date} starts between {earliest} and {latest})",
                    tags::DATE,
                    snapshot.start_time
                ));
            }
            // A copy starts when it is copied, any day after its source (a pending source waits for
            // the next run): its own StartTime bounds the date from below only, and its source's,
            // when in view, is held to the window.
            let is_copy = snapshot.volume_id == COPY_VOLUME_ID;
            match self.source_of(snapshot) {
                Some(source) if source.start_time < earliest || source.start_time > latest => {
                    return Err(format!(
                        "{} {date} but its source {}'s StartTime is {} (a snapshot of {date} starts between \
                         {earliest} and {latest})",
                        tags::DATE,
                        source.snapshot_id,
                        source.start_time
                    ));
                }
                None if !is_copy && snapshot.start_time > latest => {
                    return Err(format!(
                        "{} {date} but EC2's StartTime is {} (a snapshot of {date} starts between {earliest} and {latest})",
                        tags::DATE,
                        snapshot.start_time
                    ));
                }
                _ => {}
            }
        }
        Ok(volume)
    }

    fn volume(&self, snapshot: &'a ObservedSnapshot) -> Result<&'a str, String> {
        let ec2 = snapshot.volume_id.as_str();
        let tagged = snapshot.tags.get(tags::VOLUME_ID).map(String::as_str);
        if ec2 == COPY_VOLUME_ID {
            let Some(tagged) = tagged else {
                return Err(format!("a copy ({COPY_VOLUME_ID}) without {}", tags::VOLUME_ID));
            };
            let Some(source) = snapshot.tags.get(SOURCE_SNAPSHOT_ID) else {
                return Err(format!("a copy ({COPY_VOLUME_ID}) without {SOURCE_SNAPSHOT_ID}"));
            };
            // A source in this region is checked; one elsewhere (or gone) cannot be, and the copy's
            // tag is all there is.
            if let Some(original) = self.by_id.get(source.as_str())
                && original.volume_id != tagged
            {
                return Err(format!(
                    "{} {tagged} but its source {source} is a snapshot of {}",
                    tags::VOLUME_ID,
                    original.volume_id
                ));
            }
            return Ok(tagged);
        }
        if ec2.is_empty() {
            return Err("EC2 reports no VolumeId".into());
        }
        match tagged {
            Some(tagged) if tagged != ec2 => Err(format!("{} {tagged} but EC2's VolumeId is {ec2}", tags::VOLUME_ID)),
            _ => Ok(ec2),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use openclaw_ops_shared::snapshot::State;

    use super::*;

    const AGE: TimeDelta = TimeDelta::hours(12);

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn snap(id: &str, ec2_volume: &str, tag_volume: Option<&str>, date: Option<&str>, start: &str) -> ObservedSnapshot {
        let mut t = BTreeMap::new();
        if let Some(v) = tag_volume {
            t.insert(tags::VOLUME_ID.to_owned(), v.to_owned());
        }
        if let Some(d) = date {
            t.insert(tags::DATE.to_owned(), d.to_owned());
        }
        ObservedSnapshot {
            snapshot_id: id.into(),
            volume_id: ec2_volume.into(),
            state: State::Completed,
            start_time: at(start),
            tags: t,
        }
    }

    #[test]
    fn agreeing_tags_give_the_volume() {
        let all = [snap("snap-1", "vol-a", Some("vol-a"), Some("2026-11-25"), "2026-11-25T03:00:05Z")];
        let fields = Ec2Fields::new(&all, AGE);
        assert_eq!(fields.check(&all[0]), Ok("vol-a"));
        let untagged = snap("snap-2", "vol-a", None, None, "2026-01-01T00:00:00Z");
        assert_eq!(fields.check(&untagged), Ok("vol-a"));
    }

    #[test]
    fn a_volume_id_tag_that_is_not_ec2s_disagrees() {
        let s = snap("snap-1", "vol-foreign", Some("vol-gateway"), None, "2026-11-25T03:00:05Z");
        let why = Ec2Fields::new(&[], AGE).check(&s).unwrap_err();
        assert_eq!(why, "openclaw:volume-id vol-gateway but EC2's VolumeId is vol-foreign");
        assert!(
            Ec2Fields::new(&[], AGE).check(&snap("snap-2", "", Some("vol-a"), None, "2026-11-25T03:00:05Z")).is_err()
        );
    }

    #[test]
    fn the_date_must_match_the_start_time_within_the_schedules_window() {
        let fields = Ec2Fields::new(&[], AGE);
        let date = Some("2026-11-25");
        // The earliest a snapshot of the 25th starts (a manual run at midnight, clocks apart)...
        assert!(fields.check(&snap("s", "vol-a", None, date, "2026-11-24T23:55:00Z")).is_ok());
        // ...and the latest: a schedule at 23:59 retried for 12 h, the run itself, the skew.
        assert!(fields.check(&snap("s", "vol-a", None, date, "2026-11-26T12:20:00Z")).is_ok());
        for start in ["2026-11-24T23:54:59Z", "2026-11-26T12:20:01Z", "2026-11-04T03:00:05Z"] {
            let why = fields.check(&snap("s", "vol-a", None, date, start)).unwrap_err();
            assert!(why.starts_with("openclaw:date 2026-11-25 but EC2's StartTime is"), "{start}: {why}");
        }
        let why = fields.check(&snap("s", "vol-a", None, Some("yesterday"), "2026-11-25T03:00:05Z")).unwrap_err();
        assert!(why.contains("is not a date"), "{why}");
    }

    #[test]
    fn copies_are_checked_through_their_source() {
        let source = snap("snap-src", "vol-a", Some("vol-a"), None, "2026-11-25T03:00:05Z");
        let copy = |tag_volume: &str| {
            let mut c = snap("snap-copy", COPY_VOLUME_ID, Some(tag_volume), None, "2026-11-25T03:10:00Z");
            c.tags.insert(SOURCE_SNAPSHOT_ID.into(), "snap-src".into());
            c
        };
        let all = [source];
        let fields = Ec2Fields::new(&all, AGE);
        assert_eq!(fields.check(&copy("vol-a")), Ok("vol-a"));
        assert_eq!(
            fields.check(&copy("vol-b")).unwrap_err(),
            "openclaw:volume-id vol-b but its source snap-src is a snapshot of vol-a"
        );
        // A source in another region cannot be looked at: the copy's tags are taken.
        assert_eq!(Ec2Fields::new(&[], AGE).check(&copy("vol-b")), Ok("vol-b"));
        let orphan = snap("snap-x", COPY_VOLUME_ID, Some("vol-a"), None, "2026-11-25T03:10:00Z");
        assert!(fields.check(&orphan).unwrap_err().contains(SOURCE_SNAPSHOT_ID));
    }

    #[test]
    fn a_copys_date_is_checked_through_its_source_and_its_own_start_bounds_it_from_below() {
        let home = [snap("snap-src", "vol-a", Some("vol-a"), Some("2026-11-25"), "2026-11-25T03:00:05Z")];
        let copy = |date: &str, start: &str| {
            let mut c = snap("snap-copy", COPY_VOLUME_ID, Some("vol-a"), Some(date), start);
            c.tags.insert(SOURCE_SNAPSHOT_ID.into(), "snap-src".into());
            c
        };
        let fields = Ec2Fields::new(&[], AGE).with_sources(&home);
        // Copied three days late (the source was pending, the copy waited): still the 25th's.
        assert_eq!(fields.check(&copy("2026-11-25", "2026-11-28T03:00:00Z")), Ok("vol-a"));
        // Re-tagged to a later date: its source's StartTime says otherwise.
        let why = fields.check(&copy("2026-11-27", "2026-11-28T03:00:00Z")).unwrap_err();
        assert!(why.contains("its source snap-src's StartTime is 2026-11-25"), "{why}");
        // A copy cannot start before its date, source in view or not.
        let early = copy("2026-11-29", "2026-11-28T03:00:00Z");
        assert!(Ec2Fields::new(&[], AGE).check(&early).unwrap_err().contains("EC2's StartTime"));
        // Without its source in view, a late copy is taken at its tags.
        assert_eq!(Ec2Fields::new(&[], AGE).check(&copy("2026-11-20", "2026-11-28T03:00:00Z")), Ok("vol-a"));
    }
}
