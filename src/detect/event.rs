//! What a rule sees of an activity: the raw activity fields exactly as the
//! API served them (`type`, `actor.type`, `actor.email_address`, type-specific
//! fields; arrays are searched member by member, so `audience.type` matches
//! any audience entry), plus claudit's enrichment and helpers under
//! `claudit.*`:
//!
//! | field | value |
//! |---|---|
//! | `claudit.actor.key` | the identity key of detections.md (`EMAIL`): `actor.email_address` for `user_actor` and `anthropic_actor`, else `actor.unauthenticated_email_address` |
//! | `claudit.actor.principal` | `actor.email_address`, else `actor.api_key_id`, else `actor.ip_address` (Panther's dedup key) |
//! | `claudit.outcome` | `success`, `failure` or `unknown`, as Elastic categorises the type (detections.md §0 `OK`) |
//! | `claudit.self_generated` | `true` for a `compliance_api_accessed` caused by claudit's own polling |
//! | `claudit.ip.class` | `public`, `private`, `loopback`, `link_local`, `reserved`, `invalid` |
//! | `claudit.geo.country_iso`, `.city`, `.lat`, `.lon` | GeoIP City of `actor.ip_address` (public addresses, when a database is configured) |
//! | `claudit.geo.embargoed` | `true` when the country is in `[detections] embargoed_countries` |
//! | `claudit.asn.number`, `claudit.asn.org` | GeoIP ASN of `actor.ip_address` |
//! | `claudit.user_agent.name`, `.automated`, `.category` | the parsed `actor.user_agent`: client name, whether it is a script, library, CLI or crawler, and the device category (`desktop`, `mobile`, `tablet`, `server`, `unknown`) |
//!
//! A field that is unknown or not computed (no GeoIP database, no address)
//! is absent, which Sigma's `null` matches. A raw top-level field named
//! `claudit` is shadowed by this namespace.

use std::borrow::Cow;

use rsigma_eval::event::{Event, EventValue, JsonEvent};
use serde_json::{Map, Value, json};

use crate::enrich::{DeviceType, IpClass};
use crate::ocsf::JournalContext;

/// The `claudit.*` fields rules may use (checked when a rule is loaded).
pub const CLAUDIT_FIELDS: &[&str] = &[
    "claudit.actor.key",
    "claudit.actor.principal",
    "claudit.outcome",
    "claudit.self_generated",
    "claudit.ip.class",
    "claudit.geo.country_iso",
    "claudit.geo.city",
    "claudit.geo.lat",
    "claudit.geo.lon",
    "claudit.geo.embargoed",
    "claudit.asn.number",
    "claudit.asn.org",
    "claudit.user_agent.name",
    "claudit.user_agent.automated",
    "claudit.user_agent.category",
];

/// Activity types Elastic counts as failures besides `*_failed`.
const FAILURE_TYPES: &[&str] = &[
    "org_user_invite_rejected",
    "org_creation_blocked",
    "extra_usage_spend_limit_increase_request_denied",
];

/// Activity types whose outcome is not known when they are logged.
const UNKNOWN_OUTCOME_TYPES: &[&str] = &[
    "anonymous_mobile_login_attempted",
    "end_user_invite_requested",
];

/// One activity as the rules see it: the raw fields and the `claudit.*`
/// view. The view is computed field by field when a rule asks for it
/// (most activities are tested against a few fields of it, or none), from
/// the raw activity and the enrichment the journal kept; nothing is built
/// per activity.
pub struct ActivityEvent<'a> {
    raw: JsonEvent<'a>,
    activity: &'a Value,
    context: &'a JournalContext,
    embargoed: &'a dyn Fn(&str) -> bool,
}

impl<'a> ActivityEvent<'a> {
    pub fn new(
        activity: &'a Value,
        context: &'a JournalContext,
        embargoed: &'a dyn Fn(&str) -> bool,
    ) -> ActivityEvent<'a> {
        ActivityEvent {
            raw: JsonEvent::borrow(activity),
            activity,
            context,
            embargoed,
        }
    }

    fn actor_str(&self, key: &str) -> Option<&'a str> {
        self.activity
            .get("actor")?
            .get(key)?
            .as_str()
            .filter(|s| !s.is_empty())
    }

    /// One `claudit.*` field (`path` without the `claudit.` prefix), or
    /// `None` when claudit cannot compute it.
    fn claudit_field(&self, path: &str) -> Option<EventValue<'a>> {
        let borrowed = |s: &'a str| EventValue::Str(Cow::Borrowed(s));
        let enrichment = self.context.enrichment.as_ref();
        let ip = || enrichment.and_then(|e| e.ip.as_ref());
        let location = || ip().and_then(|i| i.location.as_ref());
        let ua = || enrichment.and_then(|e| e.user_agent.as_deref());
        match path {
            "actor.key" => actor_key(
                self.actor_str("type"),
                self.actor_str("email_address"),
                || self.actor_str("unauthenticated_email_address"),
            )
            .map(borrowed),
            "actor.principal" => self
                .actor_str("email_address")
                .or_else(|| self.actor_str("api_key_id"))
                .or_else(|| self.actor_str("ip_address"))
                .map(borrowed),
            "outcome" => Some(borrowed(outcome(self.activity))),
            "self_generated" => Some(EventValue::Bool(self.context.self_generated)),
            "ip.class" => ip().map(|i| borrowed(ip_class(i.class))),
            "geo.country_iso" => location().and_then(|l| l.country.as_deref()).map(borrowed),
            "geo.embargoed" => location()
                .and_then(|l| l.country.as_deref())
                .map(|c| EventValue::Bool((self.embargoed)(c))),
            "geo.city" => location().and_then(|l| l.city.as_deref()).map(borrowed),
            "geo.lat" | "geo.lon" => location()
                .filter(|l| l.lat.is_some() && l.long.is_some())
                .and_then(|l| if path == "geo.lat" { l.lat } else { l.long })
                .map(EventValue::Float),
            "asn.number" => ip()
                .and_then(|i| i.asn.as_ref())
                .map(|a| EventValue::Int(i64::from(a.number))),
            "asn.org" => ip()
                .and_then(|i| i.asn.as_ref())
                .and_then(|a| a.name.as_deref())
                .map(borrowed),
            "user_agent.name" => ua().and_then(|u| u.name.as_deref()).map(borrowed),
            "user_agent.automated" => ua().map(|u| EventValue::Bool(u.automated)),
            "user_agent.category" => ua().map(|u| borrowed(device_category(u.device_type))),
            // An object of the namespace (no rule of the pack asks for one):
            // built whole, as `to_json` shows it.
            _ => {
                let view = claudit_view(self.activity, self.context, self.embargoed);
                let mut node = view.get("claudit")?;
                for part in path.split('.') {
                    node = node.get(part)?;
                }
                Some(owned_value(node))
            }
        }
    }
}

impl<'a> ActivityEvent<'a> {
    /// A raw field, as rsigma-eval's `JsonEvent` finds it (the whole path
    /// as a key first, then segment by segment, arrays member by member),
    /// without building the path's segments at every lookup: a plain
    /// dotted path is walked in place; one with an index or an escape
    /// (`[`, `\\`) goes to `JsonEvent`.
    fn raw_field(&self, path: &str) -> Option<EventValue<'_>> {
        let Value::Object(object) = self.activity else {
            return self.raw.get_field(path);
        };
        if let Some(v) = object.get(path) {
            return Some(EventValue::from(v));
        }
        if path.contains('[') || path.contains('\\') {
            return self.raw.get_field(path);
        }
        if !path.contains('.') {
            return None;
        }
        let mut found = Vec::new();
        collect_path(self.activity, Some(path), &mut found);
        match found.len() {
            0 => None,
            1 => found.pop(),
            _ => Some(EventValue::Array(found)),
        }
    }
}

/// Every value at the dotted `path` under `current` (`None`: `current`
/// itself); a key distributes over an array's members.
fn collect_path<'v>(current: &'v Value, path: Option<&str>, out: &mut Vec<EventValue<'v>>) {
    let Some(path) = path else {
        out.push(EventValue::from(current));
        return;
    };
    match current {
        Value::Object(map) => {
            let (key, rest) = match path.split_once('.') {
                Some((key, rest)) => (key, Some(rest)),
                None => (path, None),
            };
            if let Some(next) = map.get(key) {
                collect_path(next, rest, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_path(item, Some(path), out);
            }
        }
        _ => {}
    }
}

/// A JSON value as an owned [`EventValue`].
fn owned_value(v: &Value) -> EventValue<'static> {
    match v {
        Value::Null => EventValue::Null,
        Value::Bool(b) => EventValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => EventValue::Int(i),
            None => EventValue::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => EventValue::Str(Cow::Owned(s.clone())),
        Value::Array(items) => EventValue::Array(items.iter().map(owned_value).collect()),
        Value::Object(m) => EventValue::Map(
            m.iter()
                .map(|(k, v)| (Cow::Owned(k.clone()), owned_value(v)))
                .collect(),
        ),
    }
}

impl Event for ActivityEvent<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        match path.strip_prefix("claudit.") {
            Some(rest) => self.claudit_field(rest),
            None => self.raw_field(path),
        }
    }

    // Keyword rules search the activity as served, not claudit's additions.
    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        self.raw.any_string_value(pred)
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        self.raw.all_string_values()
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        self.raw.visit_string_values(visit)
    }

    fn to_json(&self) -> Value {
        let mut out = self.raw.to_json();
        if let (Value::Object(out), Value::Object(view)) = (
            &mut out,
            claudit_view(self.activity, self.context, self.embargoed),
        ) {
            out.extend(view);
        }
        out
    }
}

/// Builds `{"claudit": {...}}` for one activity from the enrichment the
/// journal kept. `embargoed` says whether an ISO country code is on the
/// configured embargo list.
pub fn claudit_view(
    activity: &Value,
    context: &JournalContext,
    embargoed: &dyn Fn(&str) -> bool,
) -> Value {
    let mut view = Map::new();
    let actor = activity.get("actor").and_then(Value::as_object);
    let actor_str = |key: &str| {
        actor
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut actor_view = Map::new();
    if let Some(key) = actor_key(actor_str("type"), actor_str("email_address"), || {
        actor_str("unauthenticated_email_address")
    }) {
        actor_view.insert("key".into(), Value::String(key.to_string()));
    }
    if let Some(principal) = actor_str("email_address")
        .or_else(|| actor_str("api_key_id"))
        .or_else(|| actor_str("ip_address"))
    {
        actor_view.insert("principal".into(), Value::String(principal.to_string()));
    }
    if !actor_view.is_empty() {
        view.insert("actor".into(), Value::Object(actor_view));
    }
    view.insert("outcome".into(), Value::String(outcome(activity).into()));
    view.insert("self_generated".into(), Value::Bool(context.self_generated));

    let enrichment = context.enrichment.as_ref();
    if let Some(ip) = enrichment.and_then(|e| e.ip.as_ref()) {
        view.insert("ip".into(), json!({ "class": ip_class(ip.class) }));
        if let Some(location) = &ip.location {
            let mut geo = Map::new();
            if let Some(country) = &location.country {
                geo.insert("country_iso".into(), Value::String(country.clone()));
                geo.insert("embargoed".into(), Value::Bool(embargoed(country)));
            }
            if let Some(city) = &location.city {
                geo.insert("city".into(), Value::String(city.clone()));
            }
            if let (Some(lat), Some(lon)) = (location.lat, location.long) {
                geo.insert("lat".into(), json!(lat));
                geo.insert("lon".into(), json!(lon));
            }
            if !geo.is_empty() {
                view.insert("geo".into(), Value::Object(geo));
            }
        }
        if let Some(asn) = &ip.asn {
            let mut a = Map::new();
            a.insert("number".into(), json!(asn.number));
            if let Some(name) = &asn.name {
                a.insert("org".into(), Value::String(name.clone()));
            }
            view.insert("asn".into(), Value::Object(a));
        }
    }
    if let Some(ua) = enrichment.and_then(|e| e.user_agent.as_ref()) {
        let mut u = Map::new();
        if let Some(name) = &ua.name {
            u.insert("name".into(), Value::String(name.clone()));
        }
        u.insert("automated".into(), Value::Bool(ua.automated));
        u.insert(
            "category".into(),
            Value::String(device_category(ua.device_type).into()),
        );
        view.insert("user_agent".into(), Value::Object(u));
    }
    json!({ "claudit": view })
}

/// The identity key of detections.md (`EMAIL`).
fn actor_key<'a>(
    actor_type: Option<&str>,
    email: Option<&'a str>,
    unauthenticated: impl FnOnce() -> Option<&'a str>,
) -> Option<&'a str> {
    match actor_type {
        Some("user_actor" | "anthropic_actor") => email,
        _ => unauthenticated(),
    }
}

/// Elastic's success categorisation of an activity (detections.md §0 `OK`).
pub fn outcome(activity: &Value) -> &'static str {
    let t = activity.get("type").and_then(Value::as_str).unwrap_or("");
    let failed = t.ends_with("_failed")
        || FAILURE_TYPES.contains(&t)
        || (t == "org_join_proposal_decided"
            && activity.get("approved").and_then(Value::as_bool) != Some(true))
        || (t == "compliance_api_accessed"
            && activity
                .get("status_code")
                .and_then(Value::as_i64)
                .is_some_and(|code| code >= 400));
    if failed {
        "failure"
    } else if t.ends_with("_initiated") || UNKNOWN_OUTCOME_TYPES.contains(&t) || t.is_empty() {
        "unknown"
    } else {
        "success"
    }
}

fn ip_class(class: IpClass) -> &'static str {
    match class {
        IpClass::Public => "public",
        IpClass::Private => "private",
        IpClass::Loopback => "loopback",
        IpClass::LinkLocal => "link_local",
        IpClass::Reserved => "reserved",
        IpClass::Invalid => "invalid",
    }
}

fn device_category(device: DeviceType) -> &'static str {
    match device {
        DeviceType::Unknown => "unknown",
        DeviceType::Desktop => "desktop",
        DeviceType::Mobile => "mobile",
        DeviceType::Tablet => "tablet",
        DeviceType::Server => "server",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::{Asn, Enrichment, IpInfo, Location, UserAgentInfo};

    fn view_of(activity: &Value, context: &JournalContext) -> Value {
        claudit_view(activity, context, &|c| c == "KP")
    }

    #[test]
    fn the_identity_key_follows_the_actor_type() {
        let user = json!({"type":"x","actor":{"type":"user_actor","email_address":"a@x.com","unauthenticated_email_address":"u@x.com"}});
        let unauth = json!({"type":"sso_login_failed","actor":{"type":"unauthenticated_user_actor","unauthenticated_email_address":"u@x.com","ip_address":"192.0.2.1"}});
        let api = json!({"type":"x","actor":{"type":"api_actor","api_key_id":"key_1","ip_address":"192.0.2.1"}});
        let ctx = JournalContext::default();
        assert_eq!(view_of(&user, &ctx)["claudit"]["actor"]["key"], "a@x.com");
        assert_eq!(view_of(&unauth, &ctx)["claudit"]["actor"]["key"], "u@x.com");
        assert_eq!(
            view_of(&unauth, &ctx)["claudit"]["actor"]["principal"],
            "192.0.2.1"
        );
        assert!(view_of(&api, &ctx)["claudit"]["actor"].get("key").is_none());
        assert_eq!(
            view_of(&api, &ctx)["claudit"]["actor"]["principal"],
            "key_1"
        );
    }

    #[test]
    fn outcome_follows_elastic_categorisation() {
        let cases = [
            (json!({"type":"sso_login_failed"}), "failure"),
            (
                json!({"type":"org_join_proposal_decided","approved":false}),
                "failure",
            ),
            (
                json!({"type":"org_join_proposal_decided","approved":true}),
                "success",
            ),
            (
                json!({"type":"compliance_api_accessed","status_code":403}),
                "failure",
            ),
            (
                json!({"type":"compliance_api_accessed","status_code":200}),
                "success",
            ),
            (json!({"type":"sso_login_initiated"}), "unknown"),
            (json!({"type":"claude_chat_created"}), "success"),
        ];
        for (activity, expected) in cases {
            assert_eq!(outcome(&activity), expected, "{activity}");
        }
    }

    #[test]
    fn raw_fields_are_found_as_rsigma_finds_them() {
        let activity = json!({
            "type": "claude_chat_created",
            "a.b": "dotted key",
            "a": {"b": "nested", "c": [1, 2], "": {"x": "empty key"}},
            "actor": {"type": "user_actor", "email_address": "a@x.com"},
            "audience": [{"type": "user"}, {"type": "group", "id": 7}, "loose", [{"type": "inner"}]],
            "list": [{"k": [{"v": "deep1"}, {"v": "deep2"}]}, {"k": {"v": "deep3"}}],
            "n": null,
            "b[0]": "bracketed key",
            "c": ["x", "y"],
        });
        let ctx = JournalContext::default();
        let embargoed = |_: &str| false;
        let event = ActivityEvent::new(&activity, &ctx, &embargoed);
        let rsigma = JsonEvent::borrow(&activity);
        for path in [
            "type",
            "a.b",
            "a.c",
            "a..x",
            "a.",
            ".a",
            "actor.type",
            "actor.email_address",
            "actor.missing",
            "missing.type",
            "audience.type",
            "audience.id",
            "list.k.v",
            "n",
            "n.x",
            "type.x",
            "b[0]",
            "c[1]",
            "audience[1].type",
            "a\\.b",
            "",
            "c",
        ] {
            assert_eq!(
                event.get_field(path).map(|v| v.to_json()),
                rsigma.get_field(path).map(|v| v.to_json()),
                "{path}"
            );
        }
    }

    #[test]
    fn enrichment_appears_under_claudit_and_the_raw_fields_stay_as_served() {
        let activity = json!({"type":"claude_chat_created","claudit":"spoofed","actor":{"type":"user_actor","ip_address":"203.0.113.9","user_agent":"curl/8.0"}});
        let ctx = JournalContext {
            self_generated: false,
            enrichment: Some(Enrichment {
                ip: Some(IpInfo {
                    class: IpClass::Public,
                    location: Some(Location {
                        country: Some("KP".into()),
                        city: Some("Pyongyang".into()),
                        lat: Some(39.03),
                        long: Some(125.75),
                        ..Default::default()
                    }),
                    asn: Some(Asn {
                        number: 131279,
                        name: Some("Star JV".into()),
                    }),
                }),
                user_agent: Some(std::sync::Arc::new(UserAgentInfo {
                    name: Some("curl".into()),
                    automated: true,
                    ..Default::default()
                })),
            }),
        };
        let embargoed = |c: &str| c == "KP";
        let event = ActivityEvent::new(&activity, &ctx, &embargoed);
        let field = |p: &str| event.get_field(p).map(|v| v.to_json());
        // Field by field, the lazy view says what the whole view says.
        let view = view_of(&activity, &ctx);
        for path in CLAUDIT_FIELDS {
            let whole = view.pointer(&format!("/{}", path.replace('.', "/")));
            assert_eq!(field(path).as_ref(), whole, "{path}");
        }
        assert_eq!(field("claudit.geo"), view.pointer("/claudit/geo").cloned());
        assert_eq!(field("claudit.geo.country_iso"), Some(json!("KP")));
        assert_eq!(field("claudit.geo.embargoed"), Some(json!(true)));
        assert_eq!(field("claudit.asn.number"), Some(json!(131279)));
        assert_eq!(field("claudit.user_agent.automated"), Some(json!(true)));
        assert_eq!(field("claudit.user_agent.category"), Some(json!("unknown")));
        assert_eq!(field("claudit.ip.class"), Some(json!("public")));
        assert_eq!(field("actor.type"), Some(json!("user_actor")));
        assert_eq!(field("claudit.city"), None);
        // The raw field of the same name is still the raw activity's.
        assert_eq!(field("claudit"), Some(json!("spoofed")));
    }
}
