//! Class-specific objects for a matched rule (`spec/ocsf-mapping.md` 4.2),
//! with the required-field guards of 4.3: a builder that cannot fill what its
//! class requires returns `None`, and the caller degrades the event instead
//! of inventing a value.

use serde_json::Value;

use super::classes::{Class, Verb, split_verb, status_from_suffix};
use super::node::{Node, Obj};
use super::rules::{
    Act, EntityKind, GroupFrom, Ids, Noun, Objects, Protocol, Roles, StatusRule, Target, UserFrom,
    Web,
};
use super::source::Source;

/// What the envelope already knows, for builders that refer to it.
pub struct Inputs<'a, 'e> {
    pub activity_type: &'a str,
    /// `organization_id` (else `organization_uuid`).
    pub org_uid: Option<&'a str>,
    /// The OCSF `actor.user`, for rules whose subject is the actor.
    pub actor_user: Option<&'e Obj<'a>>,
    pub has_actor: bool,
}

/// The class-specific part of an event.
pub struct Draft<'a> {
    pub class: Class,
    pub activity_id: u8,
    pub status_id: u8,
    pub status_detail: Option<&'a str>,
    /// Top-level class attributes (`user`, `entity`, `web_resources`, ...).
    pub objects: Obj<'a>,
    /// `http_request` attributes beyond the user agent.
    pub http_request: Option<Obj<'a>>,
    /// `actor.idp.name` (the identity provider of a login), from the
    /// `provider` field, which the caller consumes if it places it.
    pub idp_name: Option<&'a str>,
}

/// Builds the class-specific objects, or `None` if the record lacks what the
/// class requires.
pub fn build<'a>(
    target: &Target,
    src: &mut Source<'a>,
    inputs: &Inputs<'a, '_>,
) -> Option<Draft<'a>> {
    let t = inputs.activity_type;
    let mut draft = Draft {
        class: target.class,
        activity_id: activity_id(target, src, t),
        status_id: status_id(target.status, src, t),
        status_detail: None,
        objects: Obj::with_capacity(8),
        http_request: None,
        idp_name: None,
    };
    match target.objects {
        Objects::Auth { protocol, user } => {
            let user = user_from(user, src, inputs)?;
            draft.objects.set("user", user);
            // Required by the class's at_least_one(service, dst_endpoint):
            // the service signed in to is Claude itself.
            draft
                .objects
                .set("service", Node::Json(r#"{"name":"Claude"}"#));
            let (id, name) = match protocol {
                Protocol::None => (0u8, ""),
                Protocol::Saml => (5, "SAML"),
                Protocol::OpenId => (4, "OpenID"),
                Protocol::Other(name) => (99, name),
            };
            if id != 0 {
                draft.objects.set("auth_protocol_id", id);
                draft.objects.set("auth_protocol", name);
            }
            // Consumed by the caller once placed in `actor.idp`.
            if inputs.has_actor {
                draft.idp_name = src.peek_str("provider");
            }
        }
        Objects::Account { user } => {
            let user = user_from(user, src, inputs)?;
            draft.objects.set("user", user);
        }
        Objects::Privileges {
            target: target_ids,
            kind_field,
            roles,
        } => privileges(&mut draft, src, target_ids, kind_field, roles)?,
        Objects::Group(from) => group(&mut draft, src, from)?,
        Objects::Entity(e) => {
            let noun = noun_of(e.noun, t);
            let uid = src
                .first_str(e.uid)
                .or_else(|| named_after(src, e.kind, noun, "_id"));
            let name = src
                .first_str(e.name)
                .or_else(|| named_after(src, e.kind, noun, "_name"));
            let entity = entity(e.kind, noun, uid, name, inputs.org_uid)?;
            draft.objects.set("entity", entity);
        }
        Objects::Web(w) => {
            let resources = web_resources(&w, src, t, inputs.org_uid)?;
            draft.objects.set("web_resources", resources);
        }
        Objects::ComplianceApi => compliance_api(&mut draft, src, t),
        Objects::Api => {
            draft.objects.set("api", Obj::new().with("operation", t));
        }
        Objects::AccessTransparency => {
            let uid = src.nested_str("resource_details", "id")?;
            let mut resource = Obj::new().with("uid", uid);
            resource.set_opt("type", src.nested_str("resource_details", "type"));
            draft
                .objects
                .set("web_resources", vec![Node::from(resource)]);
        }
    }
    if draft.status_id == 2 {
        draft.status_detail = src.first_str(&[
            "reason",
            "error_type",
            "error",
            "error_message",
            "failure_reason",
        ]);
    }
    Some(draft)
}

fn activity_id(target: &Target, src: &Source, t: &str) -> u8 {
    let class = target.class;
    let verb = || split_verb(t).0;
    match target.activity {
        Act::Verb => class.activity_for(verb()),
        Act::Fixed(id) => id,
        Act::Toggle => match enabled_flag(src) {
            Some(true) => class.activity_for(Verb::Enable),
            Some(false) => class.activity_for(Verb::Disable),
            None => class.activity_for(verb()),
        },
        Act::KeyStatus => {
            let verb = verb();
            if verb == Verb::Update
                && let Some(v) = status_update(src)
            {
                return class.activity_for(v);
            }
            class.activity_for(verb)
        }
        Act::RequestMethod => match src.peek_str("request_method") {
            Some("POST") => 1,
            Some("GET") => 2,
            Some("PUT" | "PATCH") => 3,
            Some("DELETE") => 4,
            _ => 99,
        },
    }
}

/// The `enabled` / `is_enabled` flag of a toggle (sources spell it both ways).
pub fn enabled_flag(src: &Source) -> Option<bool> {
    ["enabled", "is_enabled"]
        .iter()
        .find_map(|k| src.peek(k).and_then(Value::as_bool))
}

/// Enable/Disable from an `updates[]` entry of type `status`.
fn status_update(src: &Source) -> Option<Verb> {
    let updates = src.peek("updates")?.as_array()?;
    updates.iter().find_map(|u| {
        if u.get("type")?.as_str()? != "status" {
            return None;
        }
        match u.get("current_value")?.as_str()? {
            "archived" | "inactive" | "disabled" => Some(Verb::Disable),
            "active" | "enabled" => Some(Verb::Enable),
            _ => None,
        }
    })
}

fn status_id(rule: StatusRule, src: &Source, t: &str) -> u8 {
    match rule {
        StatusRule::Suffix => status_from_suffix(t),
        StatusRule::Failure => 2,
        StatusRule::ResultField(field) => match src.peek_str(field) {
            Some("failed" | "rejected" | "error" | "denied") => 2,
            Some(_) => 1,
            None => status_from_suffix(t),
        },
        StatusRule::ErrorField(field) => match src.peek(field) {
            None | Some(Value::Null) => 1,
            Some(Value::String(s)) if s.is_empty() => 1,
            Some(_) => 2,
        },
        StatusRule::HttpStatusCode => match src.peek("status_code").and_then(Value::as_i64) {
            Some(200..=399) => 1,
            Some(400..) => 2,
            _ => 0,
        },
    }
}

fn noun_of(noun: Noun, activity_type: &str) -> &str {
    match noun {
        Noun::Fixed(n) => n,
        Noun::Derived => split_verb(activity_type).1,
    }
}

/// The organization is identified by the org id, not by a field named after
/// the noun.
fn named_after<'a>(
    src: &mut Source<'a>,
    kind: EntityKind,
    noun: &str,
    suffix: &str,
) -> Option<&'a str> {
    match kind {
        EntityKind::Organization => None,
        EntityKind::Other | EntityKind::Policy => src.named_after(noun, suffix),
    }
}

/// A user object from ids and e-mail addresses; `None` if none is present.
fn user_from_ids<'a>(src: &mut Source<'a>, ids: Ids) -> Option<Obj<'a>> {
    let uid = src.first_str(ids.uid);
    let email = src.first_str(ids.email);
    if uid.is_none() && email.is_none() {
        return None;
    }
    let mut user = Obj::new();
    user.set_opt("uid", uid);
    if let Some(email) = email {
        super::envelope::put_email(&mut user, email);
    }
    Some(user)
}

fn user_from<'a>(from: UserFrom, src: &mut Source<'a>, inputs: &Inputs<'a, '_>) -> Option<Obj<'a>> {
    match from {
        UserFrom::Actor => inputs.actor_user.cloned(),
        UserFrom::Target(ids) => user_from_ids(src, ids),
        UserFrom::TargetOrActor(ids) => {
            user_from_ids(src, ids).or_else(|| inputs.actor_user.cloned())
        }
    }
}

fn privileges<'a>(
    draft: &mut Draft<'a>,
    src: &mut Source<'a>,
    target: Ids,
    kind_field: Option<&'static str>,
    roles: Roles,
) -> Option<()> {
    // The principal's kind stays in `unmapped`; it only chooses the class.
    let to_group = kind_field
        .and_then(|f| src.peek_str(f))
        .is_some_and(|k| k.contains("group"));
    let privilege = match roles {
        Roles::Fields(fields) => src.first_str(fields)?,
        Roles::Fixed(p) => p,
    };
    if to_group {
        let uid = src.first_str(target.uid)?;
        draft.class = Class::GroupManagement;
        draft.objects.set("group", Obj::new().with("uid", uid));
    } else {
        let user = user_from_ids(src, target)?;
        draft.objects.set("user", user);
    }
    draft.objects.set("privileges", vec![Node::from(privilege)]);
    if let Some(uid) = src.str("resource_id") {
        let mut resource = Obj::new().with("uid", uid);
        resource.set_opt("type", src.str("resource_type"));
        if to_group {
            draft.objects.set("resource", resource);
        } else {
            draft.objects.set("resources", vec![Node::from(resource)]);
        }
    }
    Some(())
}

fn group<'a>(draft: &mut Draft<'a>, src: &mut Source<'a>, from: GroupFrom) -> Option<()> {
    let mut group = Obj::new();
    let mut user = Obj::new();
    match from {
        GroupFrom::Group => {
            group.set_opt("uid", src.str("group_id"));
            group.set_opt("name", src.str("group_name"));
            // One member is the event's `user`; several stay in `unmapped`
            // (the class has room for one user only).
            if let Some([Value::String(member)]) = src
                .peek("member_ids")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                && !member.is_empty()
            {
                user.set("uid", member.as_str());
                src.consume("member_ids");
            }
        }
        GroupFrom::Workspace => {
            if let Some(uid) = src.str("workspace_id") {
                group.set("uid", uid);
                group.set("type", "workspace");
            }
            if let Some(uid) = src.str("service_account_id") {
                user.set("uid", uid);
                user.set("type_id", 4u8);
                user.set("type", "Service");
            } else if let Some(uid) = src.str("user_id") {
                user.set("uid", uid);
            }
        }
    }
    if group.is_empty() {
        return None;
    }
    draft.objects.set("group", group);
    if !user.is_empty() {
        draft.objects.set("user", user);
    }
    Some(())
}

/// The `entity` of Entity Management. An entity with no id or name of its
/// own in the record is named by its type and the organization it belongs
/// to (`entity.org`), which are facts of the record; without an org either,
/// there is nothing honest to name it by and the event degrades.
fn entity<'a>(
    kind: EntityKind,
    noun: &'a str,
    uid: Option<&'a str>,
    name: Option<&'a str>,
    org_uid: Option<&'a str>,
) -> Option<Obj<'a>> {
    let mut entity = Obj::new();
    match kind {
        EntityKind::Organization => {
            let org = org_uid?;
            entity.set("type_id", 4u8);
            entity.set("type", "Organization");
            entity.set("uid", org);
            entity.set("org", Obj::new().with("uid", org));
            return Some(entity);
        }
        EntityKind::Policy => {
            entity.set("type_id", 5u8);
            entity.set("type", "Policy");
            let mut policy = Obj::new().with("type", noun);
            policy.set_opt("uid", uid);
            policy.set_opt("name", name);
            entity.set("policy", policy);
        }
        EntityKind::Other => {
            entity.set("type_id", 99u8);
            entity.set("type", noun);
        }
    }
    entity.set_opt("uid", uid);
    entity.set_opt("name", name);
    if uid.is_none() && name.is_none() && kind == EntityKind::Other {
        entity.set("org", Obj::new().with("uid", org_uid?));
    }
    Some(entity)
}

fn web_resources<'a>(
    w: &Web,
    src: &mut Source<'a>,
    t: &'a str,
    org_uid: Option<&'a str>,
) -> Option<Vec<Node<'a>>> {
    let noun = noun_of(w.noun, t);
    let uid = src
        .first_str(w.uid)
        .or_else(|| src.named_after(noun, "_id"));
    let name = src
        .first_str(w.name)
        .or_else(|| src.named_after(noun, "_name"));
    let mut resources = Vec::with_capacity(1 + w.parents.len());
    let mut primary = Obj::new().with("type", noun);
    primary.set_opt("uid", uid);
    primary.set_opt("name", name);
    if uid.is_some() || name.is_some() {
        resources.push(Node::from(primary));
    } else if w.org_scoped
        && let Some(org) = org_uid
    {
        // An organization-wide list or export: the organization's.
        primary.set("uid", org);
        resources.push(Node::from(primary));
    }
    for (field, kind) in w.parents {
        if let Some(uid) = src.str(field) {
            resources.push(Node::from(Obj::new().with("type", *kind).with("uid", uid)));
        }
    }
    if resources.is_empty() {
        None
    } else {
        Some(resources)
    }
}

const HTTP_METHODS: &[&str] = &[
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

fn compliance_api<'a>(draft: &mut Draft<'a>, src: &mut Source<'a>, t: &'a str) {
    let method_raw = src.peek_str("request_method");
    // `http_method` is an enum; an unexpected spelling stays in `unmapped`.
    let method = method_raw
        .filter(|m| HTTP_METHODS.contains(m))
        .inspect(|_| src.consume("request_method"));
    let url = src.str("url");
    let parts = url.map(split_url);
    let path = parts.as_ref().and_then(|p| p.path);
    let operation = match (method_raw, path) {
        (Some(m), Some(p)) => Node::String(format!("{m} {p}")),
        (Some(m), None) => Node::Str(m),
        (None, Some(p)) => Node::Str(p),
        (None, None) => Node::Str(t),
    };
    let request_id = src.str("request_id");
    let status_code = src.int("status_code");

    let mut http = Obj::new();
    http.set_opt("http_method", method);
    if let (Some(url), Some(parts)) = (url, parts) {
        let mut u = Obj::new().with("url_string", url);
        u.set_opt("scheme", parts.scheme);
        u.set_opt("hostname", parts.hostname);
        u.set_opt("port", parts.port);
        u.set_opt("path", parts.path);
        u.set_opt("query_string", parts.query);
        http.set("url", u);
    }
    let mut api = Obj::new().with("operation", operation);
    if let Some(id) = request_id {
        http.set("uid", id);
        api.set("request", Obj::new().with("uid", id));
    }
    if let Some(code) = status_code {
        api.set("response", Obj::new().with("code", code));
        draft
            .objects
            .set("http_response", Obj::new().with("code", code));
    }
    draft.objects.set("api", api);
    if !http.is_empty() {
        draft.http_request = Some(http);
    }
}

struct UrlParts<'a> {
    scheme: Option<&'a str>,
    hostname: Option<&'a str>,
    port: Option<u16>,
    path: Option<&'a str>,
    query: Option<&'a str>,
}

/// Splits an absolute or relative URL into the parts the OCSF `url` object
/// has. Lenient on purpose: the string itself is always kept in `url_string`.
fn split_url(url: &str) -> UrlParts<'_> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r))
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            (Some(s), r)
        }
        _ => (None, url),
    };
    let without_fragment = rest.split('#').next().unwrap_or(rest);
    let (before_query, query) = match without_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q).filter(|q| !q.is_empty())),
        None => (without_fragment, None),
    };
    let (authority, path) = if scheme.is_some() {
        match before_query.find('/') {
            Some(at) => (Some(&before_query[..at]), Some(&before_query[at..])),
            None => (Some(before_query), None),
        }
    } else {
        (None, Some(before_query))
    };
    let (hostname, port) = match authority.filter(|a| !a.is_empty() && !a.contains('@')) {
        Some(a) if !a.starts_with('[') => match a.rsplit_once(':') {
            Some((h, p)) => (Some(h), p.parse().ok()),
            None => (Some(a), None),
        },
        Some(a) => (Some(a), None),
        None => (None, None),
    };
    UrlParts {
        scheme,
        hostname: hostname.filter(|h| !h.is_empty()),
        port,
        path: path.filter(|p| !p.is_empty()),
        query,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let p = split_url("https://api.anthropic.com:8443/v1/compliance/activities?limit=5#x");
        assert_eq!(p.scheme, Some("https"));
        assert_eq!(p.hostname, Some("api.anthropic.com"));
        assert_eq!(p.port, Some(8443));
        assert_eq!(p.path, Some("/v1/compliance/activities"));
        assert_eq!(p.query, Some("limit=5"));
        let p = split_url("/v1/compliance/activities");
        assert_eq!(p.scheme, None);
        assert_eq!(p.path, Some("/v1/compliance/activities"));
        let p = split_url("https://api.anthropic.com");
        assert_eq!(p.hostname, Some("api.anthropic.com"));
        assert_eq!(p.path, None);
    }
}
