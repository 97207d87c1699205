//! The parts of every event that do not depend on the class
//! (`spec/ocsf-mapping.md` 4.1): the actor, the source endpoint and user
//! agent, and where the enrichment results go.

use std::net::IpAddr;

use serde_json::Value;

use super::node::{Node, Obj};
use super::source::Source;
use crate::enrich::{DeviceType, Enrichment, Location};

/// The OCSF `actor` built from the record's `actor`, and what it said.
pub struct Actor<'a> {
    pub object: Obj<'a>,
    /// `actor.type` is not one of the documented variants.
    pub unknown_kind: bool,
    /// `actor.ip_address`, if it is an IP address (not yet consumed: only
    /// classes with a `src_endpoint` place it).
    pub ip: Option<&'a str>,
    /// `actor.user_agent`, if not empty (not yet consumed, as `ip`).
    pub user_agent: Option<&'a str>,
}

/// `actor.user.type_id` per actor variant (section 4.1): keys, service
/// accounts, directory sync and federated workloads are services, not admins.
fn user_type(kind: &str) -> Option<(u8, &'static str)> {
    Some(match kind {
        "user_actor" => (1, "User"),
        "api_actor"
        | "admin_api_key_actor"
        | "service_account_actor"
        | "scim_directory_sync_actor"
        | "federated_identity_actor" => (4, "Service"),
        "anthropic_actor" | "system_actor" => (3, "System"),
        "unauthenticated_user_actor" | "" => (0, "Unknown"),
        _ => return None,
    })
}

/// Builds the actor. `None` if the record has no actor object, or one that
/// names no one (no id, no e-mail, no type): OCSF requires an actor to name
/// a user, an app or a session.
pub fn actor<'a>(src: &mut Source<'a>, org_uid: Option<&'a str>) -> Option<Actor<'a>> {
    if !matches!(src.peek("actor"), Some(Value::Object(_))) {
        return None;
    }
    let kind = src.peek_nested_str("actor", "type").unwrap_or("");
    let ip = src
        .peek_nested_str("actor", "ip_address")
        .filter(|ip| ip.len() <= 40 && ip.parse::<IpAddr>().is_ok());
    let user_agent = src.peek_nested_str("actor", "user_agent");

    let mut object = Obj::new();
    let mut user = Obj::with_capacity(8);
    user.set_opt("uid", src.nested_str("actor", "user_id"));
    let email = src
        .nested_str("actor", "email_address")
        .or_else(|| src.nested_str("actor", "unauthenticated_email_address"));
    if let Some(email) = email {
        put_email(&mut user, email);
    }
    // A key acting: the app is the key, and the key is the credential.
    for (field, credential) in [
        ("admin_api_key_id", "admin_api_key"),
        ("api_key_id", "api_key"),
    ] {
        if let Some(key) = src.nested_str("actor", field) {
            object.set("app_uid", key);
            if !user.contains_key("uid") {
                user.set("uid", key);
            }
            let credential = Obj::new().with("uid", key).with("type", credential);
            user.set("programmatic_credentials", vec![Node::from(credential)]);
            break;
        }
    }
    if !user.contains_key("uid") {
        // Service accounts, directory sync and federated workloads are
        // identified by their own ids.
        let id = ["service_account_id", "directory_id", "subject"]
            .iter()
            .find_map(|f| src.nested_str("actor", f));
        user.set_opt("uid", id);
    }
    let mut idp = Obj::new();
    if let Some(issuer) = src.nested_str("actor", "issuer") {
        idp.set("uid", issuer);
        idp.set("issuer", issuer);
    }
    idp.set_opt("name", src.nested_str("actor", "idp_connection_type"));
    if !idp.is_empty() {
        object.set("idp", idp);
    }
    object.set_opt("app_name", src.nested_str("actor", "service"));

    let known = user_type(kind);
    if !user.is_empty() {
        let (type_id, caption) = known.unwrap_or((99, kind));
        user.set("type_id", type_id);
        user.set("type", caption);
        if let Some(org) = org_uid {
            user.set("org", Obj::new().with("uid", org));
        }
        object.set("user", user);
    }
    if !object.contains_key("user")
        && !object.contains_key("app_uid")
        && !object.contains_key("app_name")
    {
        // Nothing but the variant itself (`anthropic_actor` has a null
        // e-mail only): the variant is what is known of who acted.
        if kind.is_empty() {
            // Without even a type, `actor.idp` alone cannot form an actor.
            return None;
        }
        object.set("app_name", kind);
    }
    Some(Actor {
        object,
        unknown_kind: known.is_none(),
        ip,
        user_agent,
    })
}

/// Puts an e-mail address in `user.name`, and in `user.email_addr` too when
/// it has the shape OCSF's `email_t` demands (else the validator warns).
pub fn put_email<'a>(user: &mut Obj<'a>, email: &'a str) {
    if is_email(email) {
        user.set("email_addr", email);
    }
    user.set("name", email);
}

/// The `email_t` pattern of OCSF 1.8.0:
/// `^[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$`
/// (`+-/` there is a range: `+ , - . /`).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+,-./=?^_`{|}~".contains(&b));
    let Some((label, rest)) = domain.split_once('.') else {
        return false;
    };
    local_ok
        && !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Enrichment results placed in the event. OCSF 1.8.0 has a home for the
/// location, the autonomous system, the operating system and the device type
/// of the source endpoint. It has none for a parsed client name and version
/// (`http_request.user_agent` is the raw header; `agent` describes security
/// sensors) nor for "automated client": those go to `unmapped.claudit`,
/// as does everything when the class has no `src_endpoint` (Base Event).
pub fn place_enrichment<'a>(
    enrichment: &'a Enrichment,
    mut endpoint: Option<&mut Obj<'a>>,
    claudit: &mut Obj<'a>,
    labels: &mut Vec<&'static str>,
) {
    if let Some(ip) = &enrichment.ip {
        labels.extend(ip.class.label());
        if let Some(location) = ip.location.as_ref().map(location) {
            // `location` needs one of city, country, postal_code, region.
            let placeable = ["city", "country", "postal_code", "region"]
                .iter()
                .any(|k| location.contains_key(k));
            match endpoint.as_deref_mut() {
                Some(ep) if placeable => ep.set("location", location),
                _ if !location.is_empty() => claudit.set("location", location),
                _ => {}
            }
        }
        if let Some(asn) = &ip.asn {
            let mut a = Obj::new().with("number", asn.number);
            a.set_opt("name", asn.name.as_deref());
            match endpoint.as_deref_mut() {
                Some(ep) => ep.set("autonomous_system", a),
                None => claudit.set("autonomous_system", a),
            }
        }
    }
    if let Some(ua) = enrichment.user_agent.as_deref() {
        let mut client = Obj::new();
        client.set_opt("name", ua.name.as_deref());
        client.set_opt("version", ua.version.as_deref());
        client.set("automated", ua.automated);
        if ua.automated {
            labels.push(super::LABEL_AUTOMATED);
        }
        let device = device_type(ua.device_type);
        match endpoint {
            Some(ep) => {
                if let Some(os_name) = ua.os_name.as_deref() {
                    let (type_id, caption) = os_type(os_name);
                    let mut os = Obj::new()
                        .with("name", os_name)
                        .with("type_id", type_id)
                        .with("type", caption.unwrap_or(os_name));
                    os.set_opt("version", ua.os_version.as_deref());
                    ep.set("os", os);
                }
                if let Some((type_id, caption)) = device {
                    ep.set("type_id", type_id);
                    ep.set("type", caption);
                }
            }
            None => {
                client.set_opt("os_name", ua.os_name.as_deref());
                client.set_opt("os_version", ua.os_version.as_deref());
                client.set_opt("device_type", device.map(|(_, caption)| caption));
            }
        }
        claudit.set("user_agent", client);
    }
}

fn location(l: &Location) -> Obj<'_> {
    let mut m = Obj::new();
    for (key, value) in [
        ("city", &l.city),
        ("country", &l.country),
        ("region", &l.region),
        ("continent", &l.continent),
        ("postal_code", &l.postal_code),
    ] {
        m.set_opt(key, value.as_deref().filter(|v| !v.is_empty()));
    }
    // `float_t` must be a JSON float; NaN or infinity would become null.
    for (key, value) in [("lat", l.lat), ("long", l.long)] {
        m.set_opt(key, value.filter(|v| v.is_finite()));
    }
    m
}

/// `network_endpoint.type_id` for a device type; `None` when unknown.
fn device_type(d: DeviceType) -> Option<(u8, &'static str)> {
    match d {
        DeviceType::Unknown => None,
        DeviceType::Server => Some((1, "Server")),
        DeviceType::Desktop => Some((2, "Desktop")),
        DeviceType::Tablet => Some((4, "Tablet")),
        DeviceType::Mobile => Some((5, "Mobile")),
    }
}

/// `os.type_id` from an OS name as user-agent parsers report it; 99 Other
/// (with the name as `type`) for the rest.
fn os_type(name: &str) -> (u16, Option<&'static str>) {
    let n = name.to_ascii_lowercase();
    if n.starts_with("windows phone") || n.starts_with("windows mobile") {
        (101, Some("Windows Mobile"))
    } else if n.starts_with("windows") {
        (100, Some("Windows"))
    } else if n.starts_with("android") {
        (201, Some("Android"))
    } else if n.starts_with("ipados") || n.starts_with("ipad") {
        (302, Some("iPadOS"))
    } else if n.starts_with("ios") || n.starts_with("iphone") {
        (301, Some("iOS"))
    } else if n.starts_with("mac") || n.starts_with("os x") {
        (300, Some("macOS"))
    } else if n.starts_with("linux")
        || n.starts_with("ubuntu")
        || n.starts_with("fedora")
        || n.starts_with("debian")
    {
        (200, Some("Linux"))
    } else {
        (99, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_shape_follows_the_ocsf_regex() {
        assert!(is_email("user@example.com"));
        assert!(is_email("first.last+tag@sub.example.co.uk"));
        assert!(!is_email("user@localhost"));
        assert!(!is_email("not an email"));
        assert!(!is_email("a@b@c.d"));
        assert!(!is_email("ü@example.com"));
        assert!(!is_email("@example.com"));
    }

    #[test]
    fn os_types() {
        assert_eq!(os_type("Windows 10"), (100, Some("Windows")));
        assert_eq!(os_type("Mac OSX"), (300, Some("macOS")));
        assert_eq!(os_type("iPhone"), (301, Some("iOS")));
        assert_eq!(os_type("ChromeOS"), (99, None));
    }
}
