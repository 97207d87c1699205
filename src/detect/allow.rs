//! Allow-lists: activities of known-good identities, networks or clients
//! that a rule (or every rule) must not count. They apply before a rule
//! sees the activity, so an allowed activity neither fires a single-event
//! rule nor adds to a count, a distinct count, a sequence, a travel check
//! or a first-seen history.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

/// The actor fields an identity entry is compared with.
const IDENTITY_FIELDS: &[&str] = &[
    "email_address",
    "unauthenticated_email_address",
    "user_id",
    "api_key_id",
    "admin_api_key_id",
    "service_account_id",
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllowList {
    /// E-mail addresses, user ids or key ids (`actor.email_address`,
    /// `actor.unauthenticated_email_address`, `actor.user_id`,
    /// `actor.api_key_id`, `actor.admin_api_key_id`,
    /// `actor.service_account_id`), compared case-insensitively.
    pub identities: Vec<String>,
    /// Networks `actor.ip_address` may fall in.
    pub networks: Vec<IpNet>,
    /// Prefixes of `actor.user_agent`, compared case-insensitively.
    pub user_agents: Vec<String>,
}

impl AllowList {
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.networks.is_empty() && self.user_agents.is_empty()
    }

    /// Whether the activity's actor is on this list.
    pub fn allows(&self, activity: &Value) -> bool {
        if self.is_empty() {
            return false;
        }
        let Some(actor) = activity.get("actor").and_then(Value::as_object) else {
            return false;
        };
        let field = |key: &str| actor.get(key).and_then(Value::as_str);
        let identity = IDENTITY_FIELDS.iter().filter_map(|k| field(k)).any(|id| {
            self.identities
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(id))
        });
        if identity {
            return true;
        }
        let network = field("ip_address")
            .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
            .is_some_and(|ip| self.networks.iter().any(|net| net.contains(&ip)));
        if network {
            return true;
        }
        field("user_agent").is_some_and(|ua| {
            self.user_agents.iter().any(|prefix| {
                ua.len() >= prefix.len()
                    && ua.is_char_boundary(prefix.len())
                    && ua[..prefix.len()].eq_ignore_ascii_case(prefix)
            })
        })
    }
}

/// Reads one network entry: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a
/// single address.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("{text:?} is not an IP network; write a CIDR like \"10.0.0.0/8\" or \"2001:db8::/32\", or one address")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identities_networks_and_agent_prefixes_are_allowed() {
        let list = AllowList {
            identities: vec!["svc@example.com".into(), "key_ci".into()],
            networks: vec![
                parse_network("10.0.0.0/8").unwrap(),
                parse_network("2001:db8::1").unwrap(),
            ],
            user_agents: vec!["Okhttp/".into()],
        };
        let actor = |a: Value| json!({"type": "x", "actor": a});
        assert!(list.allows(&actor(json!({"email_address": "SVC@example.com"}))));
        assert!(list.allows(&actor(json!({"type": "api_actor", "api_key_id": "key_ci"}))));
        assert!(list.allows(&actor(json!({"ip_address": "10.2.3.4"}))));
        assert!(list.allows(&actor(json!({"ip_address": "2001:db8::1"}))));
        assert!(list.allows(&actor(json!({"user_agent": "okhttp/4.12"}))));
        assert!(!list.allows(&actor(
            json!({"ip_address": "11.0.0.1", "user_agent": "curl/8"})
        )));
        assert!(!list.allows(&json!({"type": "x"})));
        assert!(parse_network("10.0.0.0/33").is_err());
        assert!(parse_network("example.com").unwrap_err().contains("CIDR"));
    }
}
