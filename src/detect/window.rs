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

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, LazyLock};

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
    pub values: Arc<[Option<Arc<str>>]>,
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

/// A distinct-count rule's values in one column, each with the keys of the
/// entries holding it.
type Column = HashMap<Box<str>, BTreeSet<Key>>;

#[derive(Debug, Default)]
pub struct Group {
    entries: BTreeMap<Key, Entry>,
    /// Anchors already fired at (or restored from the journal), with when
    /// they arrived.
    fired: BTreeMap<Key, i64>,
    newest_ms: i64,
    /// A distinct-count rule's columns: its primary value (its fields as
    /// one), then one per `also` condition (an any-of condition keeps the
    /// entries whose value is on its list, under one value). Each value
    /// knows the entries holding it, so a window's distinct count is a
    /// lookup per value, and an insert knows which windows it can change
    /// (see [`Group::changed_by`]).
    columns: Vec<Column>,
    /// A sequence rule's entries by step.
    steps: Vec<BTreeSet<Key>>,
    /// Entries of a distinct-count rule whose window may hold although they
    /// neither fired nor are suppressed: inserted with `replay`, or within
    /// the suppression of an anchor since forgotten. Every other entry is
    /// *settled* (its window does not hold, or it fired or is suppressed),
    /// so an insert checks only the entries whose window it changed, and
    /// these.
    unsettled: BTreeSet<Key>,
    /// Entries of a distinct-count rule whose window fell short of the
    /// condition when last checked (or that were never checked). Only
    /// these, the new entry and the unsettled ones can newly fire: every
    /// other entry fired or is suppressed. So an insert looks for the
    /// windows it completed among these alone, not among every entry of
    /// the span it changed (see [`Group::changed_by`]).
    unmet: BTreeSet<Key>,
    /// No entry or fired anchor arrived before this (a lower bound,
    /// `None` while there are none): eviction by age looks at them only
    /// once one may have arrived longer ago than the rule's reach, so a
    /// backlog journaled within the reach costs no scan per insert.
    earliest_arrival: Option<i64>,
}

/// The first key at `ms` (before every activity id).
fn floor_key(ms: i64) -> Key {
    static EMPTY: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));
    (ms, Arc::clone(&EMPTY))
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
        self.record_fire(key, arrived_ms);
    }

    /// Whether a candidate anchor may fire: not already fired, and no fired
    /// anchor within `suppress_ms` of it on either side.
    fn may_fire(&self, key: &Key, suppress_ms: i64) -> bool {
        self.suppressed_until(key, suppress_ms).is_none()
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
            self.record_fire(key.clone(), arrived_ms);
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
    ///
    /// The candidates are the activities in `[key, key + window]`, in
    /// order; only those whose condition may newly hold are checked, which
    /// gives the same fires as checking every one (the module tests hold
    /// it against that rescan): a count rule checks the candidates whose
    /// window holds the threshold, a distinct-count rule those whose
    /// window the activity added a value to (and the unsettled ones), an
    /// ordered sequence those that are its last step.
    pub fn insert(&mut self, entry: Entry, logic: &Logic, reach: Reach, replay: bool) -> Vec<Fire> {
        let key = entry.activity.key();
        if self.entries.contains_key(&key) {
            return Vec::new();
        }
        let arrived_ms = entry.arrived_ms;
        self.newest_ms = self.newest_ms.max(key.0);
        self.add(key.clone(), entry, logic);
        let distinct = matches!(logic, Logic::Distinct { .. });
        let mut fires = Vec::new();
        if replay {
            if distinct {
                let changed = self.changed_by(&key, logic, reach);
                self.unsettled.extend(changed);
            }
            self.evict(reach, arrived_ms, logic);
            return fires;
        }
        if !self.may_hold(logic, reach) {
            if distinct {
                self.unmet.insert(key);
            }
            self.evict(reach, arrived_ms, logic);
            return fires;
        }
        if matches!(logic, Logic::FirstSeen { .. }) {
            // Only the new activity can be first in its history.
            if self.may_fire(&key, reach.suppress_ms)
                && let Some(members) = self.holds_at(&key, logic, reach)
            {
                let anchor = Arc::clone(&self.entries[&key].activity);
                self.record_fire(key, arrived_ms);
                fires.push(Fire { anchor, members });
            }
            self.evict(reach, arrived_ms, logic);
            return fires;
        }
        let end = key.0.saturating_add(reach.window_ms);
        let candidates: Vec<Key> = match logic {
            Logic::Count => self.count_candidates(&key, reach),
            Logic::Distinct { .. } => {
                let mut candidates: BTreeSet<Key> = self.changed_by(&key, logic, reach);
                let reached: Vec<Key> = self
                    .unsettled
                    .range(key.clone()..)
                    .take_while(|k| k.0 <= end)
                    .cloned()
                    .collect();
                for k in reached {
                    // Checked now: settled whatever the outcome.
                    self.unsettled.remove(&k);
                    candidates.insert(k);
                }
                candidates.into_iter().collect()
            }
            Logic::Sequence {
                ordered: true,
                steps,
            } => self
                .steps
                .get(steps.saturating_sub(1))
                .map(|last| {
                    last.range(key.clone()..)
                        .take_while(|k| k.0 <= end)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            _ => self
                .entries
                .range(key.clone()..)
                .map(|(k, _)| k)
                .take_while(|k| k.0 <= end)
                .cloned()
                .collect(),
        };
        for candidate in candidates {
            if self
                .suppressed_until(&candidate, reach.suppress_ms)
                .is_some()
            {
                // Settled until its anchor is forgotten (then unsettled).
                if distinct {
                    self.unmet.remove(&candidate);
                }
                continue;
            }
            let holds = self.holds_at(&candidate, logic, reach);
            if distinct {
                if holds.is_some() {
                    self.unmet.remove(&candidate);
                } else {
                    self.unmet.insert(candidate.clone());
                }
            }
            if let Some(members) = holds {
                let anchor = Arc::clone(&self.entries[&candidate].activity);
                self.record_fire(candidate, arrived_ms);
                fires.push(Fire { anchor, members });
            }
        }
        self.evict(reach, arrived_ms, logic);
        fires
    }

    /// Keeps a new entry (in the entries, the rule's columns or steps).
    fn add(&mut self, key: Key, entry: Entry, logic: &Logic) {
        self.index(&key, &entry, logic);
        self.arrived(entry.arrived_ms);
        self.entries.insert(key, entry);
    }

    /// Records an anchor fired at (or restored), for suppression.
    fn record_fire(&mut self, key: Key, arrived_ms: i64) {
        self.arrived(arrived_ms);
        self.fired.insert(key, arrived_ms);
    }

    fn arrived(&mut self, arrived_ms: i64) {
        self.earliest_arrival = Some(
            self.earliest_arrival
                .map_or(arrived_ms, |e| e.min(arrived_ms)),
        );
    }

    /// Keeps an entry in the rule's columns or steps.
    fn index(&mut self, key: &Key, entry: &Entry, logic: &Logic) {
        match logic {
            Logic::Distinct { also, .. } => {
                if self.columns.is_empty() {
                    self.columns.resize_with(1 + also.len(), HashMap::new);
                }
                for (i, column) in self.columns.iter_mut().enumerate() {
                    let Some(value) = column_value(logic, entry, i) else {
                        continue;
                    };
                    match column.get_mut(value.as_ref()) {
                        Some(keys) => {
                            keys.insert(key.clone());
                        }
                        None => {
                            column.insert(value.into(), BTreeSet::from([key.clone()]));
                        }
                    }
                }
            }
            Logic::Sequence { steps, .. } => {
                if self.steps.is_empty() {
                    self.steps.resize_with(*steps, BTreeSet::new);
                }
                if let Some(keys) = self.steps.get_mut(entry.step) {
                    keys.insert(key.clone());
                }
            }
            _ => {}
        }
    }

    /// The entries (`key` among them) whose window the entry at `key`, a
    /// distinct-count rule's, may have completed: in `[key, key + window]`,
    /// those whose window held none of its values before, among the ones
    /// whose window fell short (the others fired or are suppressed). A
    /// value of `key` is new to the window of `c` when no other entry
    /// holding it is in that window: the previous one is older than
    /// `c - window` and the next one is after `c`.
    fn changed_by(&self, key: &Key, logic: &Logic, reach: Reach) -> BTreeSet<Key> {
        let end = key.0.saturating_add(reach.window_ms);
        let mut changed = BTreeSet::from([key.clone()]);
        let Some(entry) = self.entries.get(key) else {
            return changed;
        };
        for (i, column) in self.columns.iter().enumerate() {
            let Some(value) = column_value(logic, entry, i) else {
                continue;
            };
            let Some(keys) = column.get(value.as_ref()) else {
                continue;
            };
            let from = match keys.range(..key.clone()).next_back() {
                Some(previous) if previous.0.saturating_add(reach.window_ms) >= key.0 => {
                    floor_key(previous.0.saturating_add(reach.window_ms).saturating_add(1))
                }
                _ => key.clone(),
            };
            let until = keys
                .range((Bound::Excluded(key.clone()), Bound::Unbounded))
                .next();
            changed.extend(
                self.unmet
                    .range(from..)
                    .take_while(|k| k.0 <= end && until.is_none_or(|u| *k < u))
                    .cloned(),
            );
        }
        changed
    }

    /// A count rule's candidates for an insert at `key`: the entries in
    /// `[key, key + window]` whose window holds at least the threshold.
    fn count_candidates(&self, key: &Key, reach: Reach) -> Vec<Key> {
        let end = key.0.saturating_add(reach.window_ms);
        let span: Vec<&Key> = self
            .entries
            .range(floor_key(key.0.saturating_sub(reach.window_ms))..)
            .map(|(k, _)| k)
            .take_while(|k| k.0 <= end)
            .collect();
        let first = span.partition_point(|k| *k < key);
        let mut candidates = Vec::new();
        for (i, candidate) in span.iter().enumerate().skip(first) {
            let start = candidate.0.saturating_sub(reach.window_ms);
            let held = i + 1 - span[..=i].partition_point(|k| k.0 < start);
            if held as u64 >= reach.threshold {
                candidates.push((*candidate).clone());
            }
        }
        candidates
    }

    /// Whether any window of the group could satisfy `logic`: a count
    /// needs that many entries, a distinct count that many distinct
    /// values in the whole group.
    fn may_hold(&self, logic: &Logic, reach: Reach) -> bool {
        match logic {
            Logic::Count => self.entries.len() as u64 >= reach.threshold,
            Logic::Distinct { .. } => {
                self.columns.first().map_or(0, HashMap::len) as u64 >= reach.threshold
            }
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
        let low = floor_key(key.0.saturating_sub(suppress_ms - 1));
        let high = key.0.saturating_add(suppress_ms - 1);
        self.fired
            .range(low..)
            .next()
            .filter(|(k, _)| k.0 <= high)
            .map(|(k, _)| Some(k.0.saturating_add(suppress_ms)))
    }

    /// The rule's condition over the window ending at `at`; the
    /// activities behind it when it holds. Distinct counts and ordered
    /// sequences are answered from the columns and steps; the rest by a
    /// look at the window.
    fn holds_at(&self, at: &Key, logic: &Logic, reach: Reach) -> Option<Vec<Arc<ActivityRef>>> {
        let start = floor_key(at.0.saturating_sub(reach.window_ms));
        match logic {
            Logic::Distinct { .. } => {
                for (i, column) in self.columns.iter().enumerate() {
                    let need = column_threshold(logic, i, reach);
                    if (column.len() as u64) < need {
                        return None;
                    }
                    let mut held = 0;
                    for keys in column.values() {
                        if held >= need {
                            break;
                        }
                        if keys.range(start.clone()..=at.clone()).next().is_some() {
                            held += 1;
                        }
                    }
                    if held < need {
                        return None;
                    }
                }
                Some(
                    self.entries
                        .range(start..=at.clone())
                        .map(|(_, e)| Arc::clone(&e.activity))
                        .collect(),
                )
            }
            Logic::Sequence {
                ordered: true,
                steps,
            } => {
                let last = self.entries[at].step;
                if last + 1 != *steps {
                    return None;
                }
                // Earliest occurrence of each step in order, ending at `at`.
                let mut chain = Vec::with_capacity(*steps);
                let mut from = Bound::Included(start);
                for keys in self.steps.iter().take(steps - 1) {
                    let k = keys.range((from, Bound::Excluded(at.clone()))).next()?;
                    chain.push(Arc::clone(&self.entries[k].activity));
                    from = Bound::Excluded(k.clone());
                }
                chain.push(Arc::clone(&self.entries[at].activity));
                Some(chain)
            }
            _ => holds_by_scan(&self.entries, at, logic, reach),
        }
    }

    /// Forgets what no window can need any more.
    fn evict(&mut self, reach: Reach, now_arrived_ms: i64, logic: &Logic) {
        let reach_ms = reach.window_ms.max(reach.suppress_ms) + reach.allowance_ms;
        let old = self.newest_ms.saturating_sub(reach_ms);
        let stale = now_arrived_ms.saturating_sub(reach_ms);
        let Group {
            entries,
            fired,
            columns,
            steps,
            unsettled,
            unmet,
            earliest_arrival,
            ..
        } = self;
        let mut forget = |k: &Key, e: &Entry| {
            unsettled.remove(k);
            unmet.remove(k);
            for (i, column) in columns.iter_mut().enumerate() {
                if let Some(value) = column_value(logic, e, i)
                    && let Some(keys) = column.get_mut(value.as_ref())
                {
                    keys.remove(k);
                    if keys.is_empty() {
                        column.remove(value.as_ref());
                    }
                }
            }
            if let Some(keys) = steps.get_mut(e.step) {
                keys.remove(k);
            }
        };
        // An entry or anchor is forgotten when it is older than `old` and
        // arrived before `stale`. Both are in created_at order, so only
        // those before `old` are looked at, and only when one may have
        // arrived before `stale`.
        let expiring = earliest_arrival.is_some_and(|e| e < stale);
        if expiring && entries.first_key_value().is_some_and(|(k, _)| k.0 < old) {
            let expired: Vec<Key> = entries
                .range(..floor_key(old))
                .filter(|(_, e)| e.arrived_ms < stale)
                .map(|(k, _)| k.clone())
                .collect();
            for k in expired {
                if let Some(e) = entries.remove(&k) {
                    forget(&k, &e);
                }
            }
        }
        while entries.len() > MAX_GROUP_ENTRIES {
            if let Some((k, e)) = entries.pop_first() {
                forget(&k, &e);
            }
        }
        let mut lifted = Vec::new();
        if expiring && fired.first_key_value().is_some_and(|(k, _)| k.0 < old) {
            let expired: Vec<Key> = fired
                .range(..floor_key(old))
                .filter(|(_, arrived)| **arrived < stale)
                .map(|(k, _)| k.clone())
                .collect();
            for k in expired {
                fired.remove(&k);
                lifted.push(k.0);
            }
        }
        if entries.is_empty() && fired.is_empty() {
            *earliest_arrival = None;
        }
        // A forgotten anchor no longer suppresses the entries around it: a
        // distinct-count rule's must be checked again when next reached.
        if !columns.is_empty() {
            let spread = (reach.suppress_ms - 1).max(0);
            for at in lifted {
                unsettled.extend(
                    entries
                        .range(floor_key(at.saturating_sub(spread))..)
                        .map(|(k, _)| k)
                        .take_while(|k| k.0 <= at.saturating_add(spread))
                        .cloned(),
                );
            }
        }
    }

    /// Forgets what no window can need any more (a group nobody touched).
    pub fn sweep(&mut self, reach: Reach, now_arrived_ms: i64, logic: &Logic) {
        self.evict(reach, now_arrived_ms, logic);
    }
}

/// The rule's condition over the window ending at `at`, by a look at every
/// activity of the window.
fn holds_by_scan(
    entries: &BTreeMap<Key, Entry>,
    at: &Key,
    logic: &Logic,
    reach: Reach,
) -> Option<Vec<Arc<ActivityRef>>> {
    let start = floor_key(at.0.saturating_sub(reach.window_ms));
    let window = || entries.range(start.clone()..=at.clone()).map(|(_, e)| e);
    let all = || {
        window()
            .map(|e| Arc::clone(&e.activity))
            .collect::<Vec<_>>()
    };
    match logic {
        Logic::Single | Logic::Directory { .. } => Some(vec![Arc::clone(&entries[at].activity)]),
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
            let primary =
                distinct(&mut |e: &Entry| composite(&e.values[..n_fields]).map(Cow::into_owned));
            if primary < reach.threshold {
                return None;
            }
            for (i, condition) in also.iter().enumerate() {
                let column = n_fields + i;
                let holds = match condition {
                    Also::Distinct { at_least, .. } => {
                        distinct(&mut |e: &Entry| {
                            e.values.get(column)?.as_deref().map(str::to_string)
                        }) >= *at_least
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
            let last = entries[at].step;
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
                    chain.push(Arc::clone(&entries[at].activity));
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
            let last = &entries[at].activity;
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
            let earlier = entries
                .range((Bound::Included(start.clone()), Bound::Excluded(at.clone())))
                .next()
                .is_some();
            (!earlier).then(|| vec![Arc::clone(&entries[at].activity)])
        }
    }
}

/// What `entry` adds to column `i` of a distinct-count rule (see
/// [`Group`]): its primary value, an `also` field's value, or for an
/// any-of condition the empty value when its value is on the list.
fn column_value<'e>(logic: &Logic, entry: &'e Entry, i: usize) -> Option<Cow<'e, str>> {
    let Logic::Distinct { fields, also } = logic else {
        return None;
    };
    if i == 0 {
        return composite(entry.values.get(..fields.len())?);
    }
    let value = entry.values.get(fields.len() + i - 1)?.as_deref()?;
    match also.get(i - 1)? {
        Also::Distinct { .. } => Some(Cow::Borrowed(value)),
        Also::AnyOf { values, .. } => values
            .iter()
            .any(|x| x.eq_ignore_ascii_case(value))
            .then_some(Cow::Borrowed("")),
    }
}

/// How many distinct values column `i` of a distinct-count rule needs in a
/// window.
fn column_threshold(logic: &Logic, i: usize, reach: Reach) -> u64 {
    match logic {
        Logic::Distinct { also, .. } if i > 0 => match also.get(i - 1) {
            Some(Also::Distinct { at_least, .. }) => *at_least,
            _ => 1,
        },
        _ => reach.threshold,
    }
}

/// The values of several fields as one (`value_count` over a field list).
fn composite(values: &[Option<Arc<str>>]) -> Option<Cow<'_, str>> {
    match values {
        [single] => single.as_deref().map(Cow::Borrowed),
        many => {
            let parts: Option<Vec<&str>> = many.iter().map(|v| v.as_deref()).collect();
            parts.map(|p| Cow::Owned(p.join("\u{1f}")))
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The insert as it was before the columns and steps: every candidate
    /// in `[key, key + window]` checked by a look at its whole window. The
    /// oracle the incremental insert must agree with.
    fn insert_by_rescan(
        g: &mut Group,
        entry: Entry,
        logic: &Logic,
        reach: Reach,
        replay: bool,
    ) -> Vec<Fire> {
        let key = entry.activity.key();
        if g.entries.contains_key(&key) {
            return Vec::new();
        }
        let arrived_ms = entry.arrived_ms;
        g.newest_ms = g.newest_ms.max(key.0);
        g.add(key.clone(), entry, logic);
        let mut fires = Vec::new();
        if replay || !g.may_hold(logic, reach) {
            g.evict(reach, arrived_ms, logic);
            return fires;
        }
        let end = key.0.saturating_add(reach.window_ms);
        let mut from = Bound::Included(key);
        while let Some(candidate) = g
            .entries
            .range((from.clone(), Bound::Unbounded))
            .next()
            .map(|(k, _)| k.clone())
            .filter(|k| k.0 <= end)
        {
            if let Some(until) = g.suppressed_until(&candidate, reach.suppress_ms) {
                from = match until {
                    Some(ms) if ms > candidate.0 => Bound::Included(floor_key(ms)),
                    _ => Bound::Excluded(candidate),
                };
                continue;
            }
            if let Some(members) = holds_by_scan(&g.entries, &candidate, logic, reach) {
                let anchor = Arc::clone(&g.entries[&candidate].activity);
                g.record_fire(candidate.clone(), arrived_ms);
                fires.push(Fire { anchor, members });
            }
            from = Bound::Excluded(candidate);
        }
        g.evict(reach, arrived_ms, logic);
        fires
    }

    fn activity(created_ms: i64, id: u8) -> Arc<ActivityRef> {
        Arc::new(ActivityRef {
            id: Arc::from(format!("activity_{id:02}").as_str()),
            activity_type: "claude_chat_created".into(),
            created_ms,
            organization_id: None,
            organization_uuid: None,
            actor_json: None,
            context: Arc::default(),
            geo: None,
        })
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// created_at, id, step, values (0 = absent), arrived after the previous op by, replay.
        Insert(i64, u8, usize, [u8; 4], i64, bool),
        /// A finding the journal holds.
        Restore(i64, u8),
        /// A sweep, this long after the previous op.
        Sweep(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            12 => (0i64..80, 0u8..30, 0usize..3, prop::array::uniform4(0u8..4), 0i64..4, prop::bool::weighted(0.15))
                .prop_map(|(t, id, step, v, dt, replay)| Op::Insert(t, id, step, v, dt, replay)),
            1 => (0i64..80, 0u8..30).prop_map(|(t, id)| Op::Restore(t, id)),
            1 => (0i64..30).prop_map(Op::Sweep),
        ]
    }

    fn logic() -> impl Strategy<Value = Logic> {
        prop_oneof![
            Just(Logic::Count),
            Just(Logic::Distinct {
                fields: vec!["a".into()],
                also: vec![],
            }),
            Just(Logic::Distinct {
                fields: vec!["a".into(), "b".into()],
                also: vec![
                    Also::Distinct {
                        field: "c".into(),
                        at_least: 2
                    },
                    Also::AnyOf {
                        field: "d".into(),
                        values: vec!["V1".into()]
                    },
                ],
            }),
            Just(Logic::Distinct {
                fields: vec!["a".into()],
                also: vec![Also::AnyOf {
                    field: "b".into(),
                    values: vec!["v2".into(), "v3".into()]
                }],
            }),
            (1usize..4).prop_map(|steps| Logic::Sequence {
                ordered: true,
                steps
            }),
            (1usize..4).prop_map(|steps| Logic::Sequence {
                ordered: false,
                steps
            }),
        ]
    }

    fn reach() -> impl Strategy<Value = Reach> {
        (0i64..25, 0i64..25, 0i64..10, 0u64..4).prop_map(|(w, s, a, t)| Reach {
            window_ms: w,
            suppress_ms: s,
            allowance_ms: a,
            threshold: t,
        })
    }

    fn keys(fires: &[Fire]) -> Vec<(Key, Vec<Key>)> {
        fires
            .iter()
            .map(|f| (f.anchor.key(), f.members.iter().map(|m| m.key()).collect()))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// On random streams (out of order, duplicates, replays, restored
        /// anchors, sweeps), the incremental insert fires exactly where a
        /// rescan of every candidate's window does, with the same members.
        #[test]
        fn incremental_windows_fire_as_a_rescan_does(
            logic in logic(),
            reach in reach(),
            ops in prop::collection::vec(op(), 1..120),
        ) {
            let (mut fast, mut slow) = (Group::default(), Group::default());
            let mut arrived = 1_000;
            for op in ops {
                match op {
                    Op::Insert(t, id, step, v, dt, replay) => {
                        arrived += dt;
                        let steps = match &logic {
                            Logic::Sequence { steps, .. } => *steps,
                            _ => 1,
                        };
                        let values: Arc<[Option<Arc<str>>]> = v
                            .iter()
                            .map(|&n| (n > 0).then(|| Arc::from(format!("v{n}"))))
                            .collect();
                        let entry = Entry {
                            activity: activity(t, id),
                            step: step % steps,
                            values,
                            arrived_ms: arrived,
                        };
                        let a = fast.insert(entry.clone(), &logic, reach, replay);
                        let b = insert_by_rescan(&mut slow, entry, &logic, reach, replay);
                        prop_assert_eq!(keys(&a), keys(&b));
                    }
                    Op::Restore(t, id) => {
                        fast.restore_fired(activity(t, id).key(), arrived);
                        slow.restore_fired(activity(t, id).key(), arrived);
                    }
                    Op::Sweep(dt) => {
                        arrived += dt;
                        fast.sweep(reach, arrived, &logic);
                        slow.sweep(reach, arrived, &logic);
                    }
                }
                prop_assert_eq!(fast.len(), slow.len());
            }
        }
    }
}
