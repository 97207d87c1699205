//! The simulated organization: users, orgs, keys, and the value pools
//! (names, user agents, addresses, file names) records are drawn from.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::sim::ids::{tagged_id, uuid_from};
use crate::sim::rng::{Rng, STREAM_ENTITY, hash_str, hash3};

/// (display name, ASCII form used in most email addresses).
const FIRST_NAMES: &[(&str, &str)] = &[
    ("Ada", "ada"),
    ("José", "jose"),
    ("Zoë", "zoe"),
    ("Søren", "soren"),
    ("Małgorzata", "malgorzata"),
    ("Nguyễn", "nguyen"),
    ("Björk", "bjork"),
    ("Łukasz", "lukasz"),
    ("François", "francois"),
    ("Ahmad", "ahmad"),
    ("Иван", "ivan"),
    ("Дарья", "darya"),
    ("太郎", "taro"),
    ("花子", "hanako"),
    ("Αλέξανδρος", "alexandros"),
    ("محمد", "mohammed"),
    ("Chloé", "chloe"),
    ("Renée", "renee"),
    ("Ömer", "omer"),
    ("Çağla", "cagla"),
    ("Seán", "sean"),
    ("Siobhán", "siobhan"),
    ("Priya", "priya"),
    ("Wei", "wei"),
    ("Olúwaseun", "oluwaseun"),
    ("Grace", "grace"),
    ("Mateo", "mateo"),
    ("Aino", "aino"),
    ("Jürgen", "jurgen"),
    ("Ines", "ines"),
    ("Kwame", "kwame"),
    ("Ólafur", "olafur"),
];

const LAST_NAMES: &[(&str, &str)] = &[
    ("García", "garcia"),
    ("Müller", "muller"),
    ("Kierkegaard", "kierkegaard"),
    ("Kowalska", "kowalska"),
    ("Văn An", "vanan"),
    ("Guðmundsdóttir", "gudmundsdottir"),
    ("Wałęsa", "walesa"),
    ("Lefèvre", "lefevre"),
    ("Karimi", "karimi"),
    ("Петров", "petrov"),
    ("Смирнова", "smirnova"),
    ("山田", "yamada"),
    ("佐藤", "sato"),
    ("Παπαδόπουλος", "papadopoulos"),
    ("العلي", "alali"),
    ("Dubois", "dubois"),
    ("O'Brien", "obrien"),
    ("Yılmaz", "yilmaz"),
    ("Ní Bhriain", "nibhriain"),
    ("Patel", "patel"),
    ("Zhang", "zhang"),
    ("Adébáyọ̀", "adebayo"),
    ("Hopper", "hopper"),
    ("Fernández", "fernandez"),
    ("Virtanen", "virtanen"),
    ("Straße", "strasse"),
];

const EMAIL_DOMAINS: &[&str] = &[
    "acme-corp.com",
    "acme-corp.com",
    "acme-corp.com",
    "eu.acme-corp.com",
    "acme.co.uk",
    "contractors.acme-corp.com",
];

/// Internationalized addresses (RFC 6531), used for a few users.
const UNICODE_EMAIL_DOMAINS: &[&str] = &["bücher.example", "例え.jp", "пример.рф"];

pub(crate) const ORG_NAMES: &[&str] = &["Acme Corp", "Acme Überwachung GmbH", "Acme 研究所"];

/// Real user agents seen from people (browsers and the Claude apps).
pub(crate) const HUMAN_USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/140.0.7339.101 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:143.0) Gecko/20100101 Firefox/143.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:142.0) Gecko/20100101 Firefox/142.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:143.0) Gecko/20100101 Firefox/143.0",
    "Mozilla/5.0 (Android 15; Mobile; rv:143.0) Gecko/143.0 Firefox/143.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36 Edg/140.0.3485.54",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/139.0.0.0 Safari/537.36 Edg/139.0.3405.125",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Mobile Safari/537.36 EdgA/140.0.3485.54",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Claude/1.0.211 Chrome/138.0.7204.243 Electron/37.6.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Claude/1.0.734 Chrome/138.0.7204.251 Electron/37.6.1 Safari/537.36",
    "Claude/1.250922.0 CFNetwork/3826.600.41 Darwin/24.6.0",
    "claude-cli/2.0.14 (external, cli)",
    "claude-cli/2.0.8 (external, cli)",
];

/// Real user agents of programs: SDKs, HTTP libraries, tools.
pub(crate) const PROGRAM_USER_AGENTS: &[&str] = &[
    "python-requests/2.32.5",
    "python-httpx/0.28.1",
    "Python/3.12 aiohttp/3.12.15",
    "Anthropic/Python 0.69.0",
    "Go-http-client/2.0",
    "Go-http-client/1.1",
    "okhttp/4.12.0",
    "axios/1.12.2",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "curl/8.7.1",
    "curl/7.81.0",
    "Java-http-client/21.0.8",
    "Java-http-client/17.0.16",
    "Apache-HttpClient/4.5.14 (Java/17.0.8)",
    "PostmanRuntime/7.46.0",
    "claude-cli/2.0.14 (external, cli)",
];

/// Crawlers, which show up on pre-authentication pages.
pub(crate) const BOT_USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
];

pub(crate) const FILENAMES: &[&str] = &[
    "Q3 board deck.pptx",
    "Präsentation Q3 – final.pptx",
    "contrato_proveedor_2026.pdf",
    "売上レポート_2026年9月.xlsx",
    "incident-postmortem.md",
    "architecture diagram (v2).png",
    "customer_list.csv",
    "Годовой отчёт.docx",
    "notes.txt",
    "main.py",
    "résumé – Zoë.pdf",
    "budget 📊 2027.xlsx",
];

pub(crate) const TITLES: &[&str] = &[
    "Quarterly planning",
    "Résumé helper",
    "データ分析ダッシュボード",
    "Incident timeline",
    "Калькулятор бюджета",
    "Snake game",
    "Onboarding checklist ✅",
];

pub(crate) const SCOPES: &[&str] = &[
    "read:compliance_activities",
    "read:compliance_user_data",
    "delete:compliance_user_data",
    "read:compliance_org_data",
];

pub(crate) const ROLES: &[&str] = &[
    "user",
    "admin",
    "owner",
    "primary_owner",
    "developer",
    "billing",
    "claude_code_user",
    "membership_admin",
];

pub(crate) struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    /// Where this user usually connects from.
    pub ip: String,
    /// The browser or app this user usually uses.
    pub user_agent: &'static str,
    pub org: u8,
}

pub(crate) struct Org {
    pub id: String,
    pub uuid: String,
}

/// Everything about the simulated organization that is fixed per seed.
pub(crate) struct World {
    pub seed: u64,
    pub users: Vec<User>,
    pub orgs: Vec<Org>,
    /// Compliance / Admin API keys of the org's integrations.
    pub api_keys: Vec<String>,
    user_index: HashMap<String, u32>,
}

const USERS: u32 = 400;
const API_KEYS: u32 = 12;

impl World {
    pub(crate) fn new(seed: u64) -> World {
        let orgs = (0..ORG_NAMES.len() as u64)
            .map(|i| Org {
                id: tagged_id("org_", hash3(seed, hash_str("org"), i)),
                uuid: uuid_from(hash3(seed, hash_str("org-uuid"), i)),
            })
            .collect::<Vec<_>>();
        let users = (0..USERS)
            .map(|u| {
                let mut rng =
                    Rng::for_item(seed, STREAM_ENTITY, hash3(0, hash_str("user"), u.into()));
                let (first, first_ascii) = *rng.pick(FIRST_NAMES);
                let (last, last_ascii) = *rng.pick(LAST_NAMES);
                let email = if rng.chance(0.05) {
                    format!(
                        "{}.{}@{}",
                        first.to_lowercase(),
                        last.to_lowercase().replace(' ', ""),
                        rng.pick(UNICODE_EMAIL_DOMAINS)
                    )
                } else {
                    format!(
                        "{first_ascii}.{last_ascii}{}@{}",
                        u,
                        rng.pick(EMAIL_DOMAINS)
                    )
                };
                let ip = if rng.chance(0.2) {
                    ipv6(&mut rng)
                } else {
                    public_ipv4(&mut rng)
                };
                // Browsers for most, the Claude apps for many, the CLI for some.
                let user_agent = *rng.pick(HUMAN_USER_AGENTS);
                User {
                    id: tagged_id("user_", hash3(seed, hash_str("user"), u.into())),
                    name: format!("{first} {last}"),
                    email,
                    ip,
                    user_agent,
                    org: [0u8, 0, 0, 1, 1, 2][rng.below(6) as usize],
                }
            })
            .collect::<Vec<_>>();
        let api_keys = (0..API_KEYS)
            .map(|k| tagged_id("apikey_", hash3(seed, hash_str("apikey"), k.into())))
            .collect();
        let user_index = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i as u32))
            .collect();
        World {
            seed,
            users,
            orgs,
            api_keys,
            user_index,
        }
    }

    pub(crate) fn user_index(&self, user_id: &str) -> Option<u32> {
        self.user_index.get(user_id).copied()
    }

    /// The org whose `org_…` id or UUID is `id`.
    pub(crate) fn org_index(&self, id: &str) -> Option<u8> {
        self.orgs
            .iter()
            .position(|o| o.id == id || o.uuid.eq_ignore_ascii_case(id))
            .map(|i| i as u8)
    }

    /// The `k`-th entity of a kind (chat, project, ...), so the same chat is
    /// created, viewed and deleted across records.
    pub(crate) fn entity_id(&self, prefix: &str, k: u64) -> String {
        tagged_id(prefix, hash3(self.seed, hash_str(prefix), k))
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(a.is_private()
        || a.is_loopback()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_broadcast()
        || a.is_documentation()
        || a.is_unspecified()
        || o[0] == 0
        || o[0] >= 240
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 192 && o[1] == 88 && o[2] == 99)
        || (o[0] == 198 && (o[1] & 0xfe) == 18))
}

pub(crate) fn public_ipv4(rng: &mut Rng) -> String {
    loop {
        let a = Ipv4Addr::from(rng.next_u64() as u32);
        if is_public_v4(a) {
            return a.to_string();
        }
    }
}

pub(crate) fn private_ipv4(rng: &mut Rng) -> String {
    let x = rng.next_u64();
    match x % 3 {
        0 => Ipv4Addr::new(10, (x >> 8) as u8, (x >> 16) as u8, (x >> 24) as u8 | 1),
        1 => Ipv4Addr::new(
            172,
            16 | ((x >> 8) as u8 & 15),
            (x >> 16) as u8,
            (x >> 24) as u8 | 1,
        ),
        _ => Ipv4Addr::new(192, 168, (x >> 16) as u8, (x >> 24) as u8 | 1),
    }
    .to_string()
}

/// A global unicast IPv6 address under a few real allocation prefixes.
pub(crate) fn ipv6(rng: &mut Rng) -> String {
    const PREFIXES: &[(u16, u16)] = &[
        (0x2a02, 0x0810),
        (0x2600, 0x1700),
        (0x2001, 0x0818),
        (0x2a01, 0x0e0a),
        (0x2406, 0xda00),
    ];
    let (a, b) = *rng.pick(PREFIXES);
    let x = rng.next_u64();
    let y = rng.next_u64();
    Ipv6Addr::new(
        a,
        b,
        (x >> 48) as u16,
        (x >> 32) as u16,
        (y >> 48) as u16,
        (y >> 32) as u16,
        (y >> 16) as u16,
        y as u16,
    )
    .to_string()
}

/// Any address a record may carry: mostly public IPv4, some private, some IPv6.
pub(crate) fn any_ip(rng: &mut Rng) -> String {
    let r = rng.unit();
    if r < 0.7 {
        public_ipv4(rng)
    } else if r < 0.85 {
        private_ipv4(rng)
    } else {
        ipv6(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_is_deterministic_and_indexed() {
        let a = World::new(9);
        let b = World::new(9);
        let c = World::new(10);
        assert_eq!(a.users[5].email, b.users[5].email);
        assert_eq!(a.users[5].id, b.users[5].id);
        assert_ne!(a.users[5].id, c.users[5].id);
        assert_eq!(a.user_index(&a.users[17].id), Some(17));
        assert_eq!(a.org_index(&a.orgs[1].id), Some(1));
        assert_eq!(a.org_index(&a.orgs[2].uuid.to_uppercase()), Some(2));
        assert_eq!(a.org_index("org_nope"), None);
        assert!(
            a.users.iter().any(|u| !u.email.is_ascii()),
            "some internationalized emails"
        );
        assert!(
            a.users.iter().any(|u| u.ip.contains(':')),
            "some IPv6 users"
        );
    }

    #[test]
    fn address_classes() {
        let mut rng = Rng::new(4);
        for _ in 0..2000 {
            let a: Ipv4Addr = public_ipv4(&mut rng).parse().unwrap();
            assert!(is_public_v4(a), "{a}");
            let p: Ipv4Addr = private_ipv4(&mut rng).parse().unwrap();
            assert!(p.is_private(), "{p}");
            let v6: Ipv6Addr = ipv6(&mut rng).parse().unwrap();
            assert!((v6.segments()[0] & 0xe000) == 0x2000, "{v6}");
        }
    }
}
