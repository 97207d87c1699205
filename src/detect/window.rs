//! Correlation over `created_at`: each group of a stateful rule keeps the
//! activities that matched it, sorted by `(created_at, activity id)`, and
//! the anchors of the findings it already produced.
//!
//! Why claudit's own windows rather than rsigma-eval's correlation engine:
//! that engine appends timestamps in arrival order and evicts from the
//! front, measures suppression from the newest timestamp, and has no notion
//! of an activity id, so a late activity (older `created_at`, arriving after
//! newer ones) lands in the wrong place, a re-read counts twice and a fire
//! depends on arrival order. Here:
//!
//! - **Windows slide on `created_at`.** A rule fires at an activity `e` when
//!   the window `[e.created_at - window, e]` satisfies its condition (count,
//!   distinct count, ordered steps, travel). Inserting an activity `x` can
//!   change the windows of the activities in `[x.created_at, x.created_at +
//!   window]` only, so those are the candidates: in order, each is checked
//!   and fires unless suppressed. In arrival order that is `x` alone; a late
//!   `x` may complete a window whose newest activity arrived earlier, and
//!   the finding is anchored there.
//! - **A duplicate never counts twice**: an activity id already in the group
//!   changes nothing.
//! - **Suppression is symmetric in `created_at`**: a candidate within
//!   `suppress` of an anchor the group already fired at (before or after it,
//!   which late activities make possible) does not fire. An anchor fires
//!   once.
//! - **Deterministic anchors.** A finding is identified by its rule, group
//!   key and anchor activity, so the same activities fed in the same order
//!   give the same findings, and re-deriving one after a crash, a sweep or
//!   a replay gives the same uid (the journal keeps it once).
//! - **Bounded.** An activity is forgotten once it is older than the
//!   group's newest by more than the rule's reach (window or suppression,
//!   plus the late-arrival allowance) and it also arrived longer ago than
//!   that (so a backfill of old history, which arrives all at once, is
//!   still counted with its neighbours); a group keeps at most
//!   [`MAX_GROUP_ENTRIES`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use super::finding::ActivityRef;
use super::load::{Also, Logic};

/// The most activities one group keeps (the oldest go first). Enough for
/// every threshold of the built-in pack many times over.
pub const MAX_GROUP_ENTRIES: usize = 10_000;

/// Position of an activity in a group: `created_at` in ms, then its id.
pub type Key = (i64, Arc<str>);

/// A matching activity as a group keeps it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub activity: Arc<ActivityRef>,
    /// Which of the rule's detections matched (sequence steps).
    pub step: usize,
    /// Values of the rule's value fields (distinct-count fields, then the
    /// fields of its `also` conditions).
    pub values: Arc<[Option<String>]>,
    /// When the journal received the activity.
    pub arrived_ms: i64,
}

/// The window parameters of a rule, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Reach {
    pub window_ms: i64,
    pub suppress_ms: i64,
    pub allowance_ms: i64,
    pub threshold: u64,
}

/// A decision to fire: the anchor and the activities behind it.
#[derive(Debug, Clone)]
pub struct Fire {
    pub anchor: Arc<ActivityRef>,
    pub members: Vec<Arc<ActivityRef>>,
}

#[derive(Debug, Default)]
pub struct Group {
    entries: BTreeMap<Key, Entry>,
    /// Anchors already fired at (or restored from the journal), with when
    /// they arrived.
    fired: BTreeMap<Key, i64>,
    newest_ms: i64,
    /// A distinct-count rule's primary values over every entry kept, with
    /// how many entries hold each: no window holds more distinct values
    /// than the whole group, so while this is under the threshold no
    /// candidate needs its window counted (a burst of one person's
    /// failures costs a lookup per activity, not a scan of the window).
    distinct: HashMap<String, u32>,
}

impl Group {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.fired.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records a finding fired earlier (the journal's), for suppression.
    pub fn restore_fired(&mut self, key: Key, arrived_ms: i64) {
        self.newest_ms = self.newest_ms.max(key.0);
        self.fired.insert(key, arrived_ms);
    }

    /// Whether a candidate anchor may fire: not already fired, and no fired
    /// anchor within `suppress_ms` of it on either side.
    fn may_fire(&self, key: &Key, suppress_ms: i64) -> bool {
        if self.fired.contains_key(key) {
            return false;
        }
        if suppress_ms <= 0 {
            return true;
        }
        let low = (key.0.saturating_sub(suppress_ms - 1), Arc::<str>::from(""));
        let high = key.0.saturating_add(suppress_ms - 1);
        self.fired
            .range((Bound::Included(low), Bound::Unbounded))
            .next()
            .is_none_or(|(k, _)| k.0 > high)
    }

    /// A single-event rule: fires at the activity unless suppressed.
    pub fn single(
        &mut self,
        activity: Arc<ActivityRef>,
        arrived_ms: i64,
        reach: Reach,
        replay: bool,
    ) -> Option<Fire> {
        let key = activity.key();
        if replay || !self.may_fire(&key, reach.suppress_ms) {
            return None;
        }
        if reach.suppress_ms > 0 {
            self.fired.insert(key.clone(), arrived_ms);
            self.newest_ms = self.newest_ms.max(key.0);
            self.evict(reach, arrived_ms, &Logic::Single);
        }
        Some(Fire {
            members: vec![Arc::clone(&activity)],
            anchor: activity,
        })
    }

    /// A stateful rule: inserts the activity and fires wherever that
    /// completes a window (see the module docs). Returns nothing for a
    /// duplicate.
    /// With `replay` (re-feeding history at start-up) the activity only
    /// fills the window: nothing fires and no anchor is recorded, so the
    /// suppression state is exactly the journal's findings.
    pub fn insert(&mut self, entry: Entry, logic: &Logic, reach: Reach, replay: bool) -> Vec<Fire> {
        let key = entry.activity.key();
        if self.entries.contains_key(&key) {
            return Vec::new();
        }
        let arrived_ms = entry.arrived_ms;
        self.newest_ms = self.newest_ms.max(key.0);
        if let Some(primary) = primary_value(logic, &entry) {
            *self.distinct.entry(primary).or_default() += 1;
        }
        self.entries.insert(key.clone(), entry);
        let mut fires = Vec::new();
        if replay || !self.may_hold(logic, reach) {
            self.evict(reach, arrived_ms, logic);
            return fires;
        }
        if matches!(logic, Logic::FirstSeen { .. }) {
            // Only the new activity can be first in its history.
            if self.may_fire(&key, reach.suppress_ms)
                && let Some(members) = self.holds_at(&key, logic, reach)
            {
                let anchor = Arc::clone(&self.entries[&key].activity);
                self.fired.insert(key, arrived_ms);
                fires.push(Fire { anchor, members });
            }
            self.evict(reach, arrived_ms, logic);
            return fires;
        }
        // The candidates are the activities in [key, key + window], in
        // order. The feed is newest-first, so a page arrives oldest-last
        // and every activity of it precedes the ones already held: the
        // candidates of a burst are the whole burst. A run of candidates
        // that an anchor suppresses is skipped at once, to the first one
        // past the anchor's suppression.
        let end = key.0.saturating_add(reach.window_ms);
        let mut from = Bound::Included(key);
        while let Some(candidate) = self
            .entries
            .range((from.clone(), Bound::Unbounded))
            .next()
            .map(|(k, _)| k.clone())
            .filter(|k| k.0 <= end)
        {
            if let Some(until) = self.suppressed_until(&candidate, reach.suppress_ms) {
                from = match until {
                    Some(ms) if ms > candidate.0 => Bound::Included((ms, Arc::<str>::from(""))),
                    _ => Bound::Excluded(candidate),
                };
                continue;
            }
            if let Some(members) = self.holds_at(&candidate, logic, reach) {
                let anchor = Arc::clone(&self.entries[&candidate].activity);
                self.fired.insert(candidate.clone(), arrived_ms);
                fires.push(Fire { anchor, members });
            }
            from = Bound::Excluded(candidate);
        }
        self.evict(reach, arrived_ms, logic);
        fires
    }

    /// Whether any window of the group could satisfy `logic`: a count
    /// needs that many entries, a distinct count that many distinct
    /// values in the whole group.
    fn may_hold(&self, logic: &Logic, reach: Reach) -> bool {
        match logic {
            Logic::Count => self.entries.len() as u64 >= reach.threshold,
            Logic::Distinct { .. } => self.distinct.len() as u64 >= reach.threshold,
            _ => true,
        }
    }

    /// Why `key` may not fire: `Some(None)` when it fired already,
    /// `Some(Some(ms))` when an anchor suppresses every candidate before
    /// `ms`; `None` when it may fire.
    fn suppressed_until(&self, key: &Key, suppress_ms: i64) -> Option<Option<i64>> {
        if self.fired.contains_key(key) {
            return Some(None);
        }
        if suppress_ms <= 0 {
            return None;
        }
        let low = (key.0.saturating_sub(suppress_ms - 1), Arc::<str>::from(""));
        let high = key.0.saturating_add(suppress_ms - 1);
        self.fired
            .range((Bound::Included(low), Bound::Unbounded))
            .next()
            .filter(|(k, _)| k.0 <= high)
            .map(|(k, _)| Some(k.0.saturating_add(suppress_ms)))
    }

    /// The rule's condition over the window ending at `at`; the
    /// activities behind it when it holds.
    fn holds_at(&self, at: &Key, logic: &Logic, reach: Reach) -> Option<Vec<Arc<ActivityRef>>> {
        let start = (at.0.saturating_sub(reach.window_ms), Arc::<str>::from(""));
        let window = || {
            self.entries
                .range((Bound::Included(start.clone()), Bound::Included(at.clone())))
                .map(|(_, e)| e)
        };
        let all = || {
            window()
                .map(|e| Arc::clone(&e.activity))
                .collect::<Vec<_>>()
        };
        match logic {
            Logic::Single | Logic::Directory { .. } => {
                Some(vec![Arc::clone(&self.entries[at].activity)])
            }
            Logic::Count => {
                let n = window().count() as u64;
                (n >= reach.threshold).then(all)
            }
            Logic::Distinct { fields, also } => {
                let n_fields = fields.len();
                let distinct = |column: &mut dyn FnMut(&Entry) -> Option<String>| {
                    window()
                        .filter_map(column)
                        .collect::<HashSet<String>>()
                        .len() as u64
                };
                let primary = distinct(&mut |e: &Entry| composite(&e.values[..n_fields]));
                if primary < reach.threshold {
                    return None;
                }
                for (i, condition) in also.iter().enumerate() {
                    let column = n_fields + i;
                    let holds = match condition {
                        Also::Distinct { at_least, .. } => {
                            distinct(&mut |e: &Entry| e.values.get(column).cloned().flatten())
                                >= *at_least
                        }
                        Also::AnyOf { values, .. } => window().any(|e| {
                            e.values
                                .get(column)
                                .and_then(Option::as_deref)
                                .is_some_and(|v| values.iter().any(|x| x.eq_ignore_ascii_case(v)))
                        }),
                    };
                    if !holds {
                        return None;
                    }
                }
                Some(all())
            }
            Logic::Sequence { ordered, steps } => {
                let steps = *steps;
                let last = self.entries[at].step;
                if *ordered && last + 1 != steps {
                    return None;
                }
                if *ordered {
                    // Earliest occurrence of each step in order, ending at `at`.
                    let mut chain = Vec::new();
                    let mut next = 0;
                    for e in window() {
                        if next + 1 == steps {
                            break;
                        }
                        if e.step == next && e.activity.key() != *at {
                            chain.push(Arc::clone(&e.activity));
                            next += 1;
                        }
                    }
                    (next + 1 == steps).then(|| {
                        chain.push(Arc::clone(&self.entries[at].activity));
                        chain
                    })
                } else {
                    let mut seen = vec![None; steps];
                    for e in window() {
                        if seen[e.step].is_none() {
                            seen[e.step] = Some(Arc::clone(&e.activity));
                        }
                    }
                    seen.into_iter().collect::<Option<Vec<_>>>()
                }
            }
            Logic::GeoVelocity {
                min_distance_km,
                min_speed_kmh,
                min_countries,
            } => {
                let last = &self.entries[at].activity;
                let here = last.geo.as_ref()?;
                if *min_countries > 1 {
                    let countries: HashSet<&str> = window()
                        .filter_map(|e| e.activity.geo.as_ref().and_then(|g| g.country.as_deref()))
                        .collect();
                    if countries.len() < *min_countries {
                        return None;
                    }
                }
                // The earliest earlier point that is too far for the time between.
                window()
                    .filter(|e| e.activity.key() != *at)
                    .find(|e| {
                        e.activity.geo.as_ref().is_some_and(|there| {
                            let km = distance_km(there.lat, there.lon, here.lat, here.lon);
                            let hours = (at.0 - e.activity.created_ms) as f64 / 3_600_000.0;
                            km >= *min_distance_km && (hours <= 0.0 || km / hours >= *min_speed_kmh)
                        })
                    })
                    .map(|e| vec![Arc::clone(&e.activity), Arc::clone(last)])
            }
            Logic::FirstSeen { .. } => {
                let earlier = self
                    .entries
                    .range((Bound::Included(start.clone()), Bound::Excluded(at.clone())))
                    .next()
                    .is_some();
                (!earlier).then(|| vec![Arc::clone(&self.entries[at].activity)])
            }
        }
    }

    /// Forgets what no window can need any more.
    fn evict(&mut self, reach: Reach, now_arrived_ms: i64, logic: &Logic) {
        let reach_ms = reach.window_ms.max(reach.suppress_ms) + reach.allowance_ms;
        let old = self.newest_ms.saturating_sub(reach_ms);
        let stale = now_arrived_ms.saturating_sub(reach_ms);
        let Group {
            entries, distinct, ..
        } = self;
        let mut forget = |e: &Entry| {
            if let Some(primary) = primary_value(logic, e)
                && let Some(n) = distinct.get_mut(&primary)
            {
                *n -= 1;
                if *n == 0 {
                    distinct.remove(&primary);
                }
            }
        };
        // Entries are in created_at order: only the oldest can be evicted
        // by age, so the scan stops at the first one kept by it.
        if entries.first_key_value().is_some_and(|(k, _)| k.0 < old) {
            entries.retain(|k, e| {
                let keep = k.0 >= old || e.arrived_ms >= stale;
                if !keep {
                    forget(e);
                }
                keep
            });
        }
        while entries.len() > MAX_GROUP_ENTRIES {
            if let Some((_, e)) = entries.pop_first() {
                forget(&e);
            }
        }
        self.fired
            .retain(|k, arrived| k.0 >= old || *arrived >= stale);
    }

    /// Forgets what no window can need any more (a group nobody touched).
    pub fn sweep(&mut self, reach: Reach, now_arrived_ms: i64, logic: &Logic) {
        self.evict(reach, now_arrived_ms, logic);
    }
}

/// The value a distinct-count rule counts for `entry` (its fields as one).
fn primary_value(logic: &Logic, entry: &Entry) -> Option<String> {
    match logic {
        Logic::Distinct { fields, .. } => composite(entry.values.get(..fields.len())?),
        _ => None,
    }
}

/// The values of several fields as one (`value_count` over a field list).
fn composite(values: &[Option<String>]) -> Option<String> {
    match values {
        [single] => single.clone(),
        many => {
            let parts: Option<Vec<&str>> = many.iter().map(|v| v.as_deref()).collect();
            parts.map(|p| p.join("\u{1f}"))
        }
    }
}

/// Great-circle distance (haversine, mean Earth radius).
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0 * a.sqrt().asin()
}
