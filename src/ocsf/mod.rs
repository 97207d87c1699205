//! OCSF 1.8.0 normalization (`spec/ocsf-mapping.md`).
//!
//! Every activity becomes one OCSF event: the rule table (`rules.rs`) picks
//! the class and how its objects are filled (`builders.rs`); the envelope
//! (`envelope.rs`) adds the actor, the source endpoint and the enrichment;
//! every source field the mapping did not place goes to `unmapped` under its
//! source name (`source.rs`). The event is built as a tree borrowing from the
//! activity (`node.rs`), serialized directly by `map_json`/`write_json` or
//! turned into a `Value` by `map`. Nothing is dropped and mapping never fails:
//! an unknown type takes the section 5 fallback (`claude_compliance:fallback`),
//! a known type whose record lacks what its class requires is downgraded the
//! same way (`claude_compliance:degraded`) rather than given invented values.

mod builders;
pub mod classes;
mod directory;
mod envelope;
pub mod inventory;
mod node;
pub mod rules;
mod severity;
mod source;

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::directory::{Directory, DirectoryContext};
use crate::enrich::Enrichment;
use crate::model::Activity;

/// `[ocsf]`: how activities become OCSF events.
#[derive(Debug, Clone, Default)]
pub struct OcsfConfig {
    /// Per-type severity overrides: activity type -> OCSF severity_id (0..=6, 99).
    pub severity: HashMap<String, u8>,
    /// Include the original record in `raw_data`.
    pub include_raw_data: bool,
}

pub use classes::Class;
pub use envelope::is_email;
pub use rules::{RULES, Rule, rule_for};
pub use severity::{may_turn_compliance_logging_off, turns_compliance_logging_off};

use builders::{Draft, Inputs};
use classes::{severity_caption, split_verb, status_caption, status_from_suffix};
use node::{Node, Obj};
use source::Source;

pub const OCSF_VERSION: &str = "1.8.0";
/// No rule matches the activity type: section 5 fallback.
pub const LABEL_FALLBACK: &str = "claude_compliance:fallback";
/// A rule matched but the record lacked what its class requires (or the
/// record itself lacked an id or a parseable `created_at`).
pub const LABEL_DEGRADED: &str = "claude_compliance:degraded";
/// A `compliance_api_accessed` caused by this daemon's own polling.
pub const LABEL_SELF: &str = "claudit:self";
/// `actor.type` is not one of the documented variants.
pub const LABEL_UNKNOWN_ACTOR: &str = "claude_compliance:unknown_actor";
/// The user agent is a script, library or CLI rather than a person.
pub const LABEL_AUTOMATED: &str = "claudit:automated_client";

const LOG_NAME: &str = "claude_compliance_activities";
const LOG_PROVIDER: &str = "Anthropic Compliance API";
/// `metadata.product`, the same in every event.
const PRODUCT: &str =
    r#"{"name":"Claude","vendor_name":"Anthropic","feature":{"name":"Compliance API"}}"#;

/// Per-activity facts the mapper needs beyond the activity itself.
#[derive(Debug, Default)]
pub struct MapContext<'a> {
    pub enrichment: Option<&'a Enrichment>,
    /// The activity is a `compliance_api_accessed` caused by this daemon.
    pub self_generated: bool,
    /// `metadata.processed_time` (epoch ms): when claudit journaled the
    /// activity, so rendering the same journal row again gives the same bytes.
    pub processed_ms: i64,
}

/// What rendering a journaled activity needs besides its raw JSON: the
/// enrichment found when it was read and whether it was the daemon's own
/// call. The poller stores it as JSON in the journal's `context` column; the
/// OCSF event itself is rendered from the row when a sink reads it
/// ([`Mapper::render_journaled`]), which keeps the journal at a third of the
/// bytes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct JournalContext {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub self_generated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<Enrichment>,
}

impl JournalContext {
    pub fn to_json(&self) -> String {
        // Plain structs of strings, numbers and bools: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

/// Parsed journal contexts by their JSON text. An organization's activities
/// repeat a limited set of contexts (its people's addresses, devices and
/// clients), and parsing one costs more than enriching afresh did, so sinks
/// keep the parsed ones: 4,096, shared by every sink of a process. (A
/// million simulated activities carry about two hundred distinct contexts;
/// the benchmark's GeoIP databases give many networks the same place, so
/// that is the cache's best case. BENCHMARKS.md.)
#[derive(Debug)]
struct ContextCache(quick_cache::sync::Cache<String, Arc<JournalContext>>);

impl Default for ContextCache {
    fn default() -> ContextCache {
        ContextCache(quick_cache::sync::Cache::new(4096))
    }
}

impl ContextCache {
    fn parse(&self, text: &str) -> Arc<JournalContext> {
        if let Some(hit) = self.0.get(text) {
            return hit;
        }
        let context = Arc::new(match serde_json::from_str(text) {
            Ok(context) => context,
            Err(e) => {
                // Only a damaged state database gets here; the event is still
                // delivered, without enrichment, and the damage is reported.
                tracing::warn!(error = %e, context = %text,
                    "journal row with an unreadable enrichment context: delivering its event without enrichment. The state database may be damaged: stop the daemon and run sqlite3 STATE_DB 'PRAGMA integrity_check'");
                JournalContext::default()
            }
        });
        self.0.insert(text.to_owned(), Arc::clone(&context));
        context
    }
}

/// Maps activities to OCSF events. Built once from the config.
#[derive(Debug, Clone, Default)]
pub struct Mapper {
    severity_overrides: HashMap<String, u8>,
    include_raw_data: bool,
    rules: Arc<rules::RuleCache>,
    contexts: Arc<ContextCache>,
    /// Who the actors are, for sources that sync their directory
    /// (`src/directory/`); placed by `directory.rs`.
    directory: Option<Arc<Directory>>,
}

impl Mapper {
    pub fn new(config: &OcsfConfig) -> Mapper {
        let mut severity_overrides = HashMap::with_capacity(config.severity.len());
        for (activity_type, &id) in &config.severity {
            if classes::is_valid_severity(id) {
                severity_overrides.insert(activity_type.clone(), id);
            } else {
                // The config layer validates this; a value that still gets
                // here would make every such event invalid OCSF.
                tracing::warn!(
                    activity_type = %activity_type,
                    severity = id,
                    "ignoring OCSF severity override: severity_id must be 0..=6 or 99"
                );
            }
        }
        Mapper {
            severity_overrides,
            include_raw_data: config.include_raw_data,
            rules: Arc::default(),
            contexts: Arc::default(),
            directory: None,
        }
    }

    /// This mapper, rendering journal rows with directory context.
    pub fn with_directory(mut self, directory: Option<Arc<Directory>>) -> Mapper {
        self.directory = directory;
        self
    }

    /// The directory this mapper renders with, if any.
    pub fn directory(&self) -> Option<&Arc<Directory>> {
        self.directory.as_ref()
    }

    /// The OCSF event for one activity. Never fails: anything the mapping
    /// does not understand degrades to the fallback, tagged.
    pub fn map(&self, activity: &Activity, ctx: &MapContext) -> Value {
        self.event(activity, ctx, None).into_value()
    }

    /// The OCSF event for one activity, serialized as JSON: the event `map`
    /// returns, without building a `Value` in between (the faster path for
    /// the journal and the sinks). Keys come in a logical rather than sorted
    /// order.
    pub fn map_json(&self, activity: &Activity, ctx: &MapContext) -> String {
        let mut out = Vec::with_capacity(activity.raw.len() * 3);
        self.write_json(activity, ctx, &mut out);
        // serde_json writes valid UTF-8 only.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The OCSF event of a journal row: its raw activity, its context (JSON
    /// of [`JournalContext`]; `None` for rows without one), its
    /// `created_at_ms` (which stands in for a missing `created_at`, as it did
    /// when the row was journaled) and when it was journaled. A pure function
    /// of the row and this mapper: re-rendering gives the same bytes.
    pub fn render_journaled(
        &self,
        raw: &str,
        context: Option<&str>,
        created_at_ms: i64,
        journaled_at_ms: i64,
    ) -> String {
        self.render_journaled_row(raw, context, created_at_ms, journaled_at_ms, None)
    }

    /// [`Mapper::render_journaled`] for the row `seq` of `source` (`origin`),
    /// with its directory context when the mapper has a directory: the
    /// directory as it was at the activity's `created_at`, as known when the
    /// row was journaled, so this too is a pure function of the row.
    pub fn render_journaled_row(
        &self,
        raw: &str,
        context: Option<&str>,
        created_at_ms: i64,
        journaled_at_ms: i64,
        origin: Option<(&str, i64)>,
    ) -> String {
        let context = context.map(|text| self.contexts.parse(text));
        let context = context.as_deref();
        let now = chrono::DateTime::from_timestamp_millis(created_at_ms).unwrap_or_default();
        let activity = Activity::parse_journaled(raw, now);
        let directory = match (&self.directory, origin) {
            (Some(d), Some((source, seq))) => d.context(source, seq, &activity),
            _ => None,
        };
        let ctx = MapContext {
            enrichment: context.and_then(|c| c.enrichment.as_ref()),
            self_generated: context.is_some_and(|c| c.self_generated),
            processed_ms: journaled_at_ms,
        };
        let mut out = Vec::with_capacity(activity.raw.len() * 3);
        self.event(&activity, &ctx, directory.as_ref())
            .write_json(&mut out);
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Appends the OCSF event for one activity, as JSON, to `out`.
    pub fn write_json(&self, activity: &Activity, ctx: &MapContext, out: &mut Vec<u8>) {
        self.event(activity, ctx, None).write_json(out);
    }

    fn event<'a>(
        &self,
        activity: &'a Activity,
        ctx: &MapContext<'a>,
        directory: Option<&'a DirectoryContext>,
    ) -> Node<'a> {
        let fields = &activity.fields;
        let t = activity.activity_type.as_str();
        let mut src = Source::new(fields);
        let mut labels: Vec<&'static str> = Vec::with_capacity(4);

        // Common fields (section 4.1).
        let source_id = src
            .peek_str("id")
            .filter(|id| !activity.id_synthesized && *id == activity.id);
        if source_id.is_some() {
            src.consume("id");
        }
        let source_type = src.str("type");
        let original_time = src.str("created_at");
        let org_uid = src
            .str("organization_id")
            .or_else(|| src.str("organization_uuid"));
        let mut actor = envelope::actor(&mut src, org_uid);
        let has_actor = actor.is_some();
        let actor_ip = actor.as_ref().and_then(|a| a.ip);

        // Class-specific objects from the rule table, with the section 4.3
        // guards; the section 5 fallback for unknown types.
        let rule = self.rules.rule_for(t);
        let checkpoint = src.checkpoint();
        let built = rule.and_then(|r| {
            let actor_user = match actor.as_ref().and_then(|a| a.object.get("user")) {
                Some(Node::Object(user)) => Some(user),
                _ => None,
            };
            let inputs = Inputs {
                activity_type: t,
                org_uid,
                actor_user,
                has_actor,
            };
            builders::build(&r.target, &mut src, &inputs)
        });
        // API Activity requires an actor and a source endpoint.
        let built = built.filter(|d| d.class != Class::ApiActivity || actor_ip.is_some());
        let draft = match built {
            Some(draft) => draft,
            None => {
                src.rollback(checkpoint);
                labels.push(if rule.is_some() {
                    LABEL_DEGRADED
                } else {
                    LABEL_FALLBACK
                });
                fallback(t, actor_ip.is_some())
            }
        };
        let class = draft.class;
        if activity.created_at_fallback || activity.id_synthesized {
            push_once(&mut labels, LABEL_DEGRADED);
        }
        if ctx.self_generated {
            labels.push(LABEL_SELF);
        }

        // Actor, source endpoint, user agent.
        if let Some(a) = actor.as_mut() {
            if a.unknown_kind {
                labels.push(LABEL_UNKNOWN_ACTOR);
            }
            if let Some(provider) = draft.idp_name {
                let idp = a.object.object_mut("idp");
                if !idp.contains_key("name") {
                    idp.set("name", provider);
                    src.consume("provider");
                }
            }
        }
        let mut src_endpoint = None;
        let mut http_request = draft.http_request;
        if class.has_network_fields()
            && let Some(a) = &actor
        {
            if let Some(ip) = a.ip {
                src.nested_str("actor", "ip_address");
                src_endpoint = Some(Obj::new().with("ip", ip));
            }
            if let Some(ua) = a.user_agent {
                src.nested_str("actor", "user_agent");
                http_request
                    .get_or_insert_with(Obj::new)
                    .set("user_agent", ua);
            }
        }
        let mut claudit = Obj::new();
        if let Some(enrichment) = ctx.enrichment {
            envelope::place_enrichment(
                enrichment,
                src_endpoint.as_mut(),
                &mut claudit,
                &mut labels,
            );
        }

        let severity_id = self
            .severity_overrides
            .get(t)
            .copied()
            .unwrap_or_else(|| severity::severity(t, fields, rule.map(|r| r.target.class)));

        // Assemble: the classification first, then the class's objects.
        let mut event = Obj::with_capacity(32);
        event.set("class_uid", class.uid());
        event.set("category_uid", class.category_uid());
        event.set("activity_id", draft.activity_id);
        event.set_opt(
            "activity_name",
            class.activity_caption(draft.activity_id).or(source_type),
        );
        event.set(
            "type_uid",
            i64::from(class.uid()) * 100 + i64::from(draft.activity_id),
        );
        event.set("time", activity.created_at_ms());
        event.set("timezone_offset", 0u8);
        event.set("severity_id", severity_id);
        event.set_opt("severity", severity_caption(severity_id));
        event.set("status_id", draft.status_id);
        event.set("status", status_caption(draft.status_id));
        event.set_opt("status_detail", draft.status_detail);
        let mut objects = draft.objects;
        if let Some(context) = directory {
            let actor_user = match actor.as_mut().map(|a| &mut a.object) {
                Some(object) if object.contains_key("user") => Some(object.object_mut("user")),
                _ => None,
            };
            let event_user = match objects.get("user") {
                Some(Node::Object(_)) => Some(objects.object_mut("user")),
                _ => None,
            };
            directory::place(context, actor_user, event_user, &mut claudit);
        }
        event.extend(objects);

        let mut metadata = Obj::with_capacity(14)
            .with("version", OCSF_VERSION)
            .with("product", Node::Json(PRODUCT))
            .with("uid", activity.id.as_str());
        metadata.set_opt("original_event_uid", source_id);
        metadata.set_opt("original_time", original_time);
        metadata.set_opt("event_code", source_type);
        metadata.set("log_name", LOG_NAME);
        metadata.set("log_provider", LOG_PROVIDER);
        metadata.set_opt("tenant_uid", org_uid);
        if class.needs_host_profile() {
            metadata.set("profiles", Node::Json(r#"["host"]"#));
        }
        if !labels.is_empty() {
            metadata.set(
                "labels",
                labels.iter().map(|l| Node::Str(l)).collect::<Vec<_>>(),
            );
        }
        metadata.set("processed_time", ctx.processed_ms);
        event.set("metadata", metadata);

        let mut observables = Vec::new();
        if let (Some(ip), true) = (actor_ip, src_endpoint.is_some()) {
            observables.push(observable("src_endpoint.ip", 2, ip));
        }
        if let Some(a) = actor {
            let email = match a.object.get("user") {
                Some(Node::Object(user)) => user.get("email_addr").and_then(Node::as_borrowed_str),
                _ => None,
            };
            if let Some(email) = email {
                observables.push(observable("actor.user.email_addr", 5, email));
            }
            event.set("actor", a.object);
        }
        if !observables.is_empty() {
            event.set("observables", observables);
        }
        event.set_opt("src_endpoint", src_endpoint);
        event.set_opt("http_request", http_request);

        let mut unmapped = src.unmapped();
        if !claudit.is_empty() {
            // The daemon's own additions; a source field of the same name
            // keeps its place.
            let key = ["claudit", "_claudit", "__claudit"]
                .into_iter()
                .find(|k| !unmapped.contains_key(k))
                .unwrap_or("___claudit");
            unmapped.set(key, claudit);
        }
        if !unmapped.is_empty() {
            event.set("unmapped", unmapped);
        }
        if self.include_raw_data {
            let raw = &*activity.raw;
            event.set("raw_data", raw);
            event.set("raw_data_size", raw.len() as i64);
        }
        Node::Object(event)
    }
}

/// An entry of `observables`.
fn observable<'a>(name: &'a str, type_id: u8, value: &'a str) -> Node<'a> {
    Node::from(
        Obj::with_capacity(3)
            .with("name", name)
            .with("type_id", type_id)
            .with("value", value),
    )
}

/// Section 5: API Activity (with `api.operation` = the type) when the actor
/// has an IP address, Base Event otherwise; the activity from the verb.
fn fallback(activity_type: &str, has_ip: bool) -> Draft<'_> {
    let class = if has_ip {
        Class::ApiActivity
    } else {
        Class::Base
    };
    let mut objects = Obj::new();
    if has_ip {
        objects.set("api", Obj::new().with("operation", activity_type));
    }
    Draft {
        class,
        activity_id: class.activity_for(split_verb(activity_type).0),
        status_id: status_from_suffix(activity_type),
        status_detail: None,
        objects,
        http_request: None,
        idp_name: None,
    }
}

fn push_once(labels: &mut Vec<&'static str>, label: &'static str) {
    if !labels.contains(&label) {
        labels.push(label);
    }
}

#[cfg(test)]
mod tests;
