//! The simulator's records, kept sorted by `(created_at, id suffix)` — the
//! feed's total order — as small fixed-size entries. Paging is a binary
//! search to the cursor or time bound plus a scan of the page itself
//! (and of whatever the filters or visibility skip).

use std::sync::Arc;

use crate::sim::ids::Key;

pub(crate) const NO_ORG: u8 = u8::MAX;
pub(crate) const NO_USER: u32 = u32::MAX;

/// One record: where it sits, when it becomes visible, what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rec {
    /// `created_at`, microseconds since the epoch.
    pub created: i64,
    /// The random part of the id (breaks ties in `created`).
    pub suffix: u64,
    /// When queries start to see it, microseconds since the epoch.
    pub visible: i64,
    /// Generator index, or index into `Store::stored` if `stored`.
    pub payload: u32,
    pub stored: bool,
    pub type_idx: u16,
    /// Org index, or `NO_ORG`.
    pub org: u8,
    /// Index of the acting user (user actors only), or `NO_USER`.
    pub user: u32,
}

impl Rec {
    pub(crate) fn key(&self) -> Key {
        Key {
            created: self.created,
            suffix: self.suffix,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Desc,
    Asc,
}

/// A resolved cursor: page strictly after or before this position, in
/// result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    After(Key),
    Before(Key),
}

/// Which records a query wants, besides position and time.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Per type index: may a record of this type be returned?
    pub types: Option<Vec<bool>>,
    /// Org indexes; records without an org never match.
    pub orgs: Option<Vec<u8>>,
    /// Acting user indexes; records without a user actor never match.
    pub users: Option<Vec<u32>>,
}

impl Filter {
    fn matches(&self, r: &Rec) -> bool {
        let type_ok = self
            .types
            .as_ref()
            .is_none_or(|t| t.get(r.type_idx as usize).copied().unwrap_or(false));
        let org_ok = self
            .orgs
            .as_ref()
            .is_none_or(|o| r.org != NO_ORG && o.contains(&r.org));
        let user_ok = self
            .users
            .as_ref()
            .is_none_or(|u| r.user != NO_USER && u.contains(&r.user));
        type_ok && org_ok && user_ok
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Selection {
    pub order: Order,
    pub anchor: Option<Anchor>,
    /// Inclusive lower bound on `created`, microseconds.
    pub from: Option<i64>,
    /// Exclusive upper bound on `created`, microseconds.
    pub until: Option<i64>,
    pub limit: usize,
    pub filter: Filter,
}

/// A page in result order. `stored` bodies are cloned out so rendering
/// happens without the lock.
#[derive(Debug)]
pub(crate) struct Page {
    pub recs: Vec<(Rec, Option<Arc<str>>)>,
    pub has_more: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    recs: Vec<Rec>,
    stored: Vec<Arc<str>>,
}

impl Store {
    /// A store from unsorted records (the backlog). Suffixes are bumped in
    /// the (astronomically unlikely) case of two equal keys, so ids are unique.
    pub(crate) fn from_records(mut recs: Vec<Rec>) -> Store {
        recs.sort_unstable_by_key(Rec::key);
        for i in 1..recs.len() {
            if recs[i].key() <= recs[i - 1].key() {
                recs[i].created = recs[i - 1].created;
                recs[i].suffix = recs[i - 1].suffix.wrapping_add(1);
            }
        }
        Store {
            recs,
            stored: Vec::new(),
        }
    }

    pub(crate) fn records(&self) -> &[Rec] {
        &self.recs
    }

    /// Inserts a generated record in order; returns its final key.
    pub(crate) fn insert(&mut self, mut rec: Rec) -> Key {
        // Live records and self activities are created "now", so this is
        // almost always an append.
        let mut pos = self.recs.partition_point(|r| r.key() < rec.key());
        while self.recs.get(pos).is_some_and(|r| r.key() == rec.key()) {
            rec.suffix = rec.suffix.wrapping_add(1);
            pos = self.recs.partition_point(|r| r.key() < rec.key());
        }
        self.recs.insert(pos, rec);
        rec.key()
    }

    /// Inserts a record whose JSON is fixed (a self activity). The body is
    /// produced from the final key, since the id is part of it.
    pub(crate) fn insert_stored(&mut self, mut rec: Rec, body: impl FnOnce(Key) -> String) -> Key {
        let mut pos = self.recs.partition_point(|r| r.key() < rec.key());
        while self.recs.get(pos).is_some_and(|r| r.key() == rec.key()) {
            rec.suffix = rec.suffix.wrapping_add(1);
            pos = self.recs.partition_point(|r| r.key() < rec.key());
        }
        rec.stored = true;
        rec.payload = self.stored.len() as u32;
        self.stored.push(Arc::from(body(rec.key())));
        self.recs.insert(pos, rec);
        rec.key()
    }

    pub(crate) fn contains(&self, key: Key) -> bool {
        self.recs.binary_search_by(|r| r.key().cmp(&key)).is_ok()
    }

    pub(crate) fn stored_body(&self, payload: u32) -> Option<Arc<str>> {
        self.stored.get(payload as usize).cloned()
    }

    /// The records a query sees at `now`, in result order.
    pub(crate) fn select(&self, q: &Selection, now: i64) -> Page {
        let recs = &self.recs;
        let mut start = q
            .from
            .map_or(0, |f| recs.partition_point(|r| r.created < f));
        let mut end = q
            .until
            .map_or(recs.len(), |u| recs.partition_point(|r| r.created < u));
        // Result order -> key order: in `desc`, "after" means older keys.
        let (older, newer) = match (q.order, q.anchor) {
            (_, None) => (None, None),
            (Order::Desc, Some(Anchor::After(k))) | (Order::Asc, Some(Anchor::Before(k))) => {
                (Some(k), None)
            }
            (Order::Desc, Some(Anchor::Before(k))) | (Order::Asc, Some(Anchor::After(k))) => {
                (None, Some(k))
            }
        };
        if let Some(k) = older {
            end = end.min(recs.partition_point(|r| r.key() < k));
        }
        if let Some(k) = newer {
            start = start.max(recs.partition_point(|r| r.key() <= k));
        }
        // Scan from the cursor outward (nearest records first), or from the
        // start of the result order when there is no cursor.
        let downward = match q.anchor {
            None => q.order == Order::Desc,
            Some(_) => older.is_some(),
        };
        let wanted = q.limit + 1;
        let mut out = Vec::with_capacity(wanted.min(8192));
        if start < end {
            let mut take = |r: &Rec| {
                if r.visible <= now && q.filter.matches(r) {
                    let body = if r.stored {
                        self.stored_body(r.payload)
                    } else {
                        None
                    };
                    out.push((*r, body));
                }
                out.len() < wanted
            };
            if downward {
                for r in recs[start..end].iter().rev() {
                    if !take(r) {
                        break;
                    }
                }
            } else {
                for r in &recs[start..end] {
                    if !take(r) {
                        break;
                    }
                }
            }
        }
        let has_more = out.len() > q.limit;
        out.truncate(q.limit);
        if matches!(q.anchor, Some(Anchor::Before(_))) {
            out.reverse();
        }
        Page {
            recs: out,
            has_more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(created: i64, visible: i64, type_idx: u16) -> Rec {
        Rec {
            created,
            suffix: created as u64 * 7,
            visible,
            payload: created as u32,
            stored: false,
            type_idx,
            org: (created % 3) as u8,
            user: if created % 2 == 0 {
                created as u32
            } else {
                NO_USER
            },
        }
    }

    fn store(n: i64) -> Store {
        Store::from_records(
            (1..=n)
                .rev()
                .map(|c| rec(c * 10, 0, (c % 4) as u16))
                .collect(),
        )
    }

    fn sel(order: Order, anchor: Option<Anchor>, limit: usize) -> Selection {
        Selection {
            order,
            anchor,
            from: None,
            until: None,
            limit,
            filter: Filter::default(),
        }
    }

    fn created(p: &Page) -> Vec<i64> {
        p.recs.iter().map(|(r, _)| r.created).collect()
    }

    #[test]
    fn desc_walk_with_after_and_back_with_before() {
        let s = store(10);
        let p1 = s.select(&sel(Order::Desc, None, 4), 0);
        assert_eq!(created(&p1), [100, 90, 80, 70]);
        assert!(p1.has_more);
        let last = p1.recs.last().unwrap().0.key();
        let p2 = s.select(&sel(Order::Desc, Some(Anchor::After(last)), 4), 0);
        assert_eq!(created(&p2), [60, 50, 40, 30]);
        let p3 = s.select(
            &sel(Order::Desc, Some(Anchor::After(p2.recs[3].0.key())), 4),
            0,
        );
        assert_eq!(created(&p3), [20, 10]);
        assert!(!p3.has_more);
        // Back toward the present: the page adjacent to the cursor.
        let back = s.select(
            &sel(Order::Desc, Some(Anchor::Before(p3.recs[0].0.key())), 3),
            0,
        );
        assert_eq!(created(&back), [50, 40, 30]);
        assert!(back.has_more);
        let top = s.select(
            &sel(Order::Desc, Some(Anchor::Before(p1.recs[1].0.key())), 3),
            0,
        );
        assert_eq!(created(&top), [100]);
        assert!(!top.has_more);
    }

    #[test]
    fn asc_walk_and_time_bounds() {
        let s = store(10);
        let p = s.select(&sel(Order::Asc, None, 3), 0);
        assert_eq!(created(&p), [10, 20, 30]);
        let p = s.select(
            &sel(Order::Asc, Some(Anchor::After(p.recs[2].0.key())), 3),
            0,
        );
        assert_eq!(created(&p), [40, 50, 60]);
        let p = s.select(
            &sel(Order::Asc, Some(Anchor::Before(p.recs[0].0.key())), 2),
            0,
        );
        assert_eq!(created(&p), [20, 30]);
        let mut q = sel(Order::Desc, None, 100);
        q.from = Some(30);
        q.until = Some(70);
        assert_eq!(created(&s.select(&q, 0)), [60, 50, 40, 30]);
        q.from = Some(71);
        assert!(s.select(&q, 0).recs.is_empty());
    }

    #[test]
    fn invisible_and_filtered_records_are_skipped() {
        let mut recs: Vec<Rec> = (1..=6).map(|c| rec(c * 10, 0, 0)).collect();
        recs[4].visible = 1_000; // created 50, not visible yet
        let s = Store::from_records(recs);
        assert_eq!(
            created(&s.select(&sel(Order::Desc, None, 10), 999)),
            [60, 40, 30, 20, 10]
        );
        assert_eq!(
            created(&s.select(&sel(Order::Desc, None, 10), 1_000)),
            [60, 50, 40, 30, 20, 10]
        );
        let mut q = sel(Order::Desc, None, 10);
        q.filter.orgs = Some(vec![1]);
        assert_eq!(created(&s.select(&q, 1_000)), [40, 10]);
        let mut q = sel(Order::Desc, None, 10);
        q.filter.users = Some(vec![20, 60]);
        assert_eq!(created(&s.select(&q, 1_000)), [60, 20]);
        let mut q = sel(Order::Desc, None, 10);
        q.filter.types = Some(vec![false]);
        assert!(s.select(&q, 1_000).recs.is_empty());
    }

    #[test]
    fn insert_keeps_order_and_unique_keys() {
        let mut s = store(3);
        let k1 = s.insert(rec(15, 0, 0));
        let k2 = s.insert(rec(15, 0, 0));
        assert_ne!(k1, k2);
        assert!(s.contains(k1) && s.contains(k2));
        let keys: Vec<Key> = s.records().iter().map(Rec::key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        let k3 = s.insert_stored(rec(40, 0, 1), |k| format!("{{\"c\":{}}}", k.created));
        let page = s.select(&sel(Order::Desc, None, 1), 0);
        assert_eq!(page.recs[0].0.key(), k3);
        assert_eq!(page.recs[0].1.as_deref(), Some("{\"c\":40}"));
    }
}
