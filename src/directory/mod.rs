//! Directory context: who an actor is (name, e-mail, groups, roles,
//! organization), as of the time the activity happened.
//!
//! - `model.rs`: the kinds of entity and the lists the sync walks.
//! - `store/`: the facts in SQLite, with valid time and the journal seq
//!   they became known at (`mod.rs`); the sync's progress and refresh
//!   requests (`runs.rs`).
//! - `settings.rs`: `[sources.directory]`.
//! - The sync task of one source (full sync at start and every `refresh`,
//!   targeted refreshes, resume after a crash), which reads the directory
//!   endpoints through the source's own client and rate limiter, is
//!   `source/directory_sync/`: the directory itself knows no API.
//! - `feed.rs`: what directory-change activities say (a removal, a group
//!   membership, a role change), recorded as facts when their page is
//!   journaled, and the refreshes they ask for.
//! - `enrich.rs`: the context of one journal row, from the in-memory index
//!   of versions (`enrich/index.rs`). Its OCSF snapshots are
//!   `ocsf/inventory.rs`.
//! - `detect.rs`: the detections that need the directory.
//! - `show.rs`, `status.rs`, `metrics.rs`: `claudit directory show`,
//!   `claudit status`, `/metrics`.
//!
//! # The point-in-time model
//!
//! Every fact has two times:
//!
//! - **valid time** `[valid_from, valid_to)`: when it was true in the
//!   organization. It comes from the best evidence there is: the API's own
//!   dates where it gives them (a member's join date, the date a user was
//!   added to a group), the `created_at` of an activity that reports a
//!   change (`org_user_deleted`, `group_member_added`,
//!   `claude_user_role_updated`, ...), and otherwise the time the sync
//!   observed it (the end of the list walk that saw, or no longer saw, it).
//! - **known from** `learned_seq`: the journal's sequence when the fact was
//!   written. A journal row with seq `s` is enriched only with the facts
//!   known before it was journaled (`learned_seq < s`, and not superseded
//!   by a correction made before it: `superseded_seq >= s`).
//!
//! The enrichment of row `s` created at `t` is the facts known to `s` that
//! hold at `t`. Facts are never updated in place: a correction supersedes
//! the old version at the current sequence and inserts the new one, so what
//! a row saw when it was first rendered is what it sees on every re-read
//! (the file sink's crash recovery compares those bytes), whatever the
//! syncs learn later, and whatever order late activities and syncs arrive
//! in. Valid time can therefore follow the evidence backwards (a removal the
//! feed reports after the sync noticed it is dated by the activity) without
//! changing a single delivered event; only rows journaled after the
//! correction use it.
//!
//! Decisions this forces, all documented in the README:
//!
//! - A user first seen by a sync at `T` who joined at `C < T` is a member
//!   from `C`, with the name, e-mail and organization role first seen
//!   (the API keeps no history of them). Their group memberships start at
//!   the date the members endpoint gives (`created_at`), or at `T` when it
//!   gives none. Before `C` they are unknown, not "departed".
//! - An activity journaled before the first sync completed stays without
//!   context. On a source's very first start the poller therefore waits for
//!   the first full sync (at most `initial_sync_wait`) before it journals.
//! - Departure: a member whose last membership ended at or before `t` is
//!   `departed` at `t`, with the end as `departed_time`. The end comes from
//!   the feed's `org_user_deleted` / `scim_user_deleted` / `org_user_left`
//!   when it arrives before the activity is journaled (facts from a page are
//!   written before the page's records, so an activity in the same page as
//!   the removal already sees it), else from the first sync that no longer
//!   listed the user.

pub mod detect;

pub mod enrich;
pub mod feed;
pub mod metrics;
pub mod model;
pub mod settings;
pub mod show;

pub mod store;

pub use enrich::{Directory, DirectoryContext, Identity};
