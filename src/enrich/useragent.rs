//! User-agent parsing: claudit's own rules for the clients woothee does not
//! know (the Claude desktop app, Claude Code, Anthropic SDKs, HTTP libraries,
//! AI crawlers), then woothee for browsers, operating systems and the
//! crawlers it knows. Results are cached: the same few user agents make up
//! almost every record.

use std::sync::Arc;

use super::{DeviceType, UserAgentInfo};

/// Longer user agents are cut to this many bytes before they are parsed or
/// cached, which bounds both the work per string and the cache's memory
/// (entries × this). Real user agents stay well below it.
pub const MAX_USER_AGENT_BYTES: usize = 1024;

/// Longest version string kept; anything longer is not a version.
const MAX_VERSION_BYTES: usize = 64;

/// Parses user-agent strings behind a bounded cache.
pub struct UserAgentParser {
    woothee: woothee::parser::Parser,
    cache: quick_cache::sync::Cache<String, Arc<UserAgentInfo>>,
}

impl UserAgentParser {
    /// A parser whose cache holds up to `capacity` distinct user agents.
    pub fn new(capacity: usize) -> UserAgentParser {
        UserAgentParser {
            woothee: woothee::parser::Parser::new(),
            cache: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }

    /// What `user_agent` says about the client, from the cache when it was
    /// seen before.
    pub fn parse(&self, user_agent: &str) -> Arc<UserAgentInfo> {
        let user_agent = bounded(user_agent);
        if let Some(hit) = self.cache.get(user_agent) {
            return hit;
        }
        let info = Arc::new(self.parse_uncached(user_agent));
        self.cache.insert(user_agent.to_owned(), Arc::clone(&info));
        info
    }

    /// Parses without the cache (benchmarks, and callers that parse a string
    /// once).
    pub fn parse_uncached(&self, user_agent: &str) -> UserAgentInfo {
        let user_agent = bounded(user_agent);
        let tokens = ProductTokens::of(user_agent);
        if let Some(info) = claude_client(user_agent, &tokens, &self.woothee) {
            return info;
        }
        if let Some(info) = anthropic_sdk(user_agent) {
            return info;
        }
        if let Some(info) = known_token(&tokens, HTTP_LIBRARIES, DeviceType::Unknown) {
            return info;
        }
        if let Some(info) = known_token(&tokens, CRAWLERS, DeviceType::Server) {
            return info;
        }
        if let Some(info) = self.woothee(user_agent) {
            return info;
        }
        unknown_product(user_agent)
    }

    fn woothee(&self, user_agent: &str) -> Option<UserAgentInfo> {
        let w = self.woothee.parse(user_agent)?;
        let name = match w.name {
            // woothee reports the product token; people know the product.
            "SamsungBrowser" => Some("Samsung Internet".to_string()),
            other => known(other),
        };
        let version = known(w.version);
        let (os_name, os_version) = operating_system(w.os, &w.os_version);
        let info = match w.category {
            "pc" => UserAgentInfo {
                name,
                version,
                os_name,
                os_version,
                device_type: DeviceType::Desktop,
                automated: false,
            },
            "smartphone" | "mobilephone" => UserAgentInfo {
                name,
                version,
                device_type: if is_tablet(user_agent, w.os) {
                    DeviceType::Tablet
                } else {
                    DeviceType::Mobile
                },
                os_name,
                os_version,
                automated: false,
            },
            "crawler" => UserAgentInfo {
                name,
                version,
                os_name: None,
                os_version: None,
                device_type: DeviceType::Server,
                automated: true,
            },
            // woothee's "HTTP Library" puts the library ("wget", "perl",
            // "curl", "Java") where the version goes.
            "misc" if w.name == "HTTP Library" => UserAgentInfo {
                name: version,
                automated: true,
                ..UserAgentInfo::default()
            },
            "misc" => UserAgentInfo {
                name,
                version,
                os_name,
                os_version,
                device_type: DeviceType::Unknown,
                // Feed readers and desktop search fetch without a person.
                automated: true,
            },
            // Game consoles, TVs, or only an OS was recognised.
            _ => UserAgentInfo {
                name,
                version,
                os_name,
                os_version,
                device_type: DeviceType::Unknown,
                automated: false,
            },
        };
        (info != UserAgentInfo::default()).then_some(info)
    }
}

/// Trimmed, and cut to [`MAX_USER_AGENT_BYTES`] on a character boundary.
fn bounded(user_agent: &str) -> &str {
    let user_agent = user_agent.trim();
    if user_agent.len() <= MAX_USER_AGENT_BYTES {
        return user_agent;
    }
    let mut end = MAX_USER_AGENT_BYTES;
    while !user_agent.is_char_boundary(end) {
        end -= 1;
    }
    &user_agent[..end]
}

/// The Claude desktop app (Electron: `… Claude/1.2.3 Chrome/… Electron/…`,
/// or shortened to `Claude/1.2.3`) and Claude Code (`claude-cli/2.0.14
/// (external, cli)`).
fn claude_client(
    user_agent: &str,
    tokens: &ProductTokens<'_>,
    woothee: &woothee::parser::Parser,
) -> Option<UserAgentInfo> {
    if let Some(version) = tokens.version_of("claude-cli") {
        return Some(UserAgentInfo {
            name: Some("Claude Code".to_string()),
            version,
            automated: true,
            ..UserAgentInfo::default()
        });
    }
    let version = tokens.version_of("Claude")?;
    // `Claude/` must carry a numeric version: "Claude/1.0" written by some
    // unrelated tool is rare, and "ClaudeBot/1.0" is a different token.
    if !version
        .as_deref()
        .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()))
    {
        return None;
    }
    let parsed = woothee.parse(user_agent);
    let (os_name, os_version) = parsed
        .as_ref()
        .map(|w| operating_system(w.os, &w.os_version))
        .unwrap_or((None, None));
    let mobile = parsed
        .as_ref()
        .is_some_and(|w| matches!(w.category, "smartphone" | "mobilephone"));
    let (name, device_type) = if !mobile {
        ("Claude Desktop", DeviceType::Desktop)
    } else if is_tablet(user_agent, parsed.as_ref().map_or("", |w| w.os)) {
        (mobile_app_name(os_name.as_deref()), DeviceType::Tablet)
    } else {
        (mobile_app_name(os_name.as_deref()), DeviceType::Mobile)
    };
    Some(UserAgentInfo {
        name: Some(name.to_string()),
        version,
        os_name,
        os_version,
        device_type,
        automated: false,
    })
}

fn mobile_app_name(os_name: Option<&str>) -> &'static str {
    match os_name {
        Some("Android") => "Claude Android",
        Some("iOS" | "iPadOS") => "Claude iOS",
        _ => "Claude Mobile",
    }
}

/// Anthropic's SDKs: `Anthropic/Python 0.40.0`, `Anthropic/JS 0.32.1`.
fn anthropic_sdk(user_agent: &str) -> Option<UserAgentInfo> {
    let rest = user_agent.strip_prefix("Anthropic/")?;
    let (language, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if language.is_empty() || !language.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(UserAgentInfo {
        name: Some(format!("Anthropic {language} SDK")),
        version: version_at(rest),
        automated: true,
        ..UserAgentInfo::default()
    })
}

/// (token in the user agent, name reported). All are programs, not people.
type KnownTokens = &'static [(&'static str, &'static str)];

const HTTP_LIBRARIES: KnownTokens = &[
    ("python-requests", "python-requests"),
    ("python-httpx", "python-httpx"),
    ("aiohttp", "aiohttp"),
    ("Python-urllib", "Python-urllib"),
    ("urllib3", "urllib3"),
    ("Go-http-client", "Go-http-client"),
    ("okhttp", "okhttp"),
    ("axios", "axios"),
    ("node-fetch", "node-fetch"),
    ("undici", "undici"),
    ("got", "got"),
    ("Bun", "Bun"),
    ("Deno", "Deno"),
    ("curl", "curl"),
    ("Wget", "Wget"),
    ("HTTPie", "HTTPie"),
    ("PostmanRuntime", "Postman"),
    ("insomnia", "Insomnia"),
    ("Java-http-client", "Java HttpClient"),
    ("Apache-HttpClient", "Apache HttpClient"),
    ("Java", "Java"),
    ("Faraday", "Faraday"),
    ("Ruby", "Ruby"),
    ("reqwest", "reqwest"),
    ("Dart", "Dart"),
    ("libcurl", "libcurl"),
    ("PowerShell", "PowerShell"),
    ("WindowsPowerShell", "PowerShell"),
    ("Terraform", "Terraform"),
];

/// Crawlers and AI fetchers that woothee does not name (it reports most of
/// them as "misc crawler" or not at all).
const CRAWLERS: KnownTokens = &[
    ("ClaudeBot", "ClaudeBot"),
    ("Claude-User", "Claude-User"),
    ("Claude-SearchBot", "Claude-SearchBot"),
    ("claude-web", "claude-web"),
    ("anthropic-ai", "anthropic-ai"),
    ("GPTBot", "GPTBot"),
    ("ChatGPT-User", "ChatGPT-User"),
    ("OAI-SearchBot", "OAI-SearchBot"),
    ("PerplexityBot", "PerplexityBot"),
    ("Perplexity-User", "Perplexity-User"),
    ("CCBot", "CCBot"),
    ("Bytespider", "Bytespider"),
    ("Amazonbot", "Amazonbot"),
    ("Applebot", "Applebot"),
    ("meta-externalagent", "meta-externalagent"),
    ("DuckDuckBot", "DuckDuckBot"),
    ("YandexBot", "YandexBot"),
];

/// The first entry of `known` present in the user agent's product tokens.
fn known_token(
    tokens: &ProductTokens<'_>,
    known: KnownTokens,
    device_type: DeviceType,
) -> Option<UserAgentInfo> {
    known.iter().find_map(|&(token, name)| {
        let version = tokens.version_of(token)?;
        Some(UserAgentInfo {
            name: Some(name.to_string()),
            version,
            device_type,
            automated: true,
            ..UserAgentInfo::default()
        })
    })
}

/// The words of a user agent split at separators (spaces, `;`, brackets,
/// commas), each as product name and the text after its first `/`:
/// `Mozilla/5.0 (compatible; ClaudeBot/1.0)` has ("Mozilla", "5.0"),
/// ("compatible", ""), ("ClaudeBot", "1.0"). Split once per parse so the
/// rule tables cost one comparison per word, not a scan of the string.
struct ProductTokens<'a>(Vec<(&'a str, &'a str)>);

impl<'a> ProductTokens<'a> {
    fn of(user_agent: &'a str) -> ProductTokens<'a> {
        ProductTokens(
            user_agent
                .split(is_separator)
                .filter(|word| !word.is_empty())
                .map(|word| word.split_once('/').unwrap_or((word, "")))
                .collect(),
        )
    }

    /// `None` if no word is the product `name`; `Some(None)` if one is but
    /// has no plausible version.
    fn version_of(&self, name: &str) -> Option<Option<String>> {
        self.0
            .iter()
            .find(|(product, _)| *product == name)
            .map(|(_, version)| version_at(version))
    }
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, ';' | '(' | ')' | ',' | '[' | ']')
}

/// The version at the start of `text`: up to the next separator, if it is
/// non-empty, printable and not absurdly long.
fn version_at(text: &str) -> Option<String> {
    let end = text.find(is_separator).unwrap_or(text.len());
    let version = &text[..end];
    let plausible = !version.is_empty()
        && version.len() <= MAX_VERSION_BYTES
        && !version.chars().any(char::is_control);
    plausible.then(|| version.to_string())
}

/// A user agent nothing recognised: report its first product token when it
/// is not a browser-style `Mozilla/…` string, without guessing anything else.
fn unknown_product(user_agent: &str) -> UserAgentInfo {
    let first = user_agent.split(is_separator).next().unwrap_or("");
    let Some((name, version)) = first.split_once('/') else {
        return UserAgentInfo::default();
    };
    let plausible_name = !name.is_empty()
        && name.len() <= MAX_VERSION_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name == "Mozilla" || !plausible_name {
        return UserAgentInfo::default();
    }
    UserAgentInfo {
        name: Some(name.to_string()),
        version: version_at(version),
        ..UserAgentInfo::default()
    }
}

/// woothee's operating system, in the names analysts search for: "Windows"
/// "10", "macOS" "14.5", "iOS" "18.1", "Android" "14".
fn operating_system(os: &str, os_version: &str) -> (Option<String>, Option<String>) {
    let version = known(os_version);
    match os {
        "UNKNOWN" | "" => (None, None),
        "Mac OSX" => (Some("macOS".to_string()), version),
        "iPhone" | "iPod" => (Some("iOS".to_string()), version),
        "iPad" => (Some("iPadOS".to_string()), version),
        "Windows Phone OS" => (Some("Windows Phone".to_string()), version),
        "Windows UNKNOWN Ver" => (Some("Windows".to_string()), None),
        // woothee keeps the CPU in front of the platform version
        // ("x86_64 14541.0.0").
        "ChromeOS" => (
            Some("ChromeOS".to_string()),
            version.and_then(|v| v.rsplit(' ').next().map(str::to_string)),
        ),
        // woothee names the release ("Windows 10") and gives the kernel
        // version ("NT 10.0") separately; the release is what people know.
        windows if windows.starts_with("Windows ") => (
            Some("Windows".to_string()),
            Some(windows["Windows ".len()..].to_string()),
        ),
        other => (Some(other.to_string()), version),
    }
}

/// woothee calls tablets smartphones; an iPad is a tablet, and so is an
/// Android device whose browser leaves out "Mobile" (Google's convention).
fn is_tablet(user_agent: &str, woothee_os: &str) -> bool {
    woothee_os == "iPad"
        || user_agent.contains("iPad")
        || (woothee_os == "Android" && !user_agent.contains("Mobile"))
}

fn known(value: &str) -> Option<String> {
    (value != "UNKNOWN" && !value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version_of(user_agent: &str, name: &str) -> Option<Option<String>> {
        ProductTokens::of(user_agent).version_of(name)
    }

    #[test]
    fn tokens_need_boundaries() {
        assert_eq!(
            version_of("Mozilla/5.0 Claude/1.3883.0", "Claude"),
            Some(Some("1.3883.0".to_string()))
        );
        assert_eq!(version_of("ClaudeBot/1.0", "Claude"), None);
        assert_eq!(version_of("my-claude/1.0", "claude"), None);
        assert_eq!(version_of("x node-fetch", "node-fetch"), Some(None));
        assert_eq!(version_of("got (https://x)", "got"), Some(None));
        assert_eq!(
            version_of("Python/3.12 aiohttp/3.9.5", "aiohttp"),
            Some(Some("3.9.5".to_string()))
        );
        assert_eq!(
            version_of(
                "(compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
                "ClaudeBot"
            ),
            Some(Some("1.0".to_string()))
        );
        assert_eq!(version_of("gotham/1.0", "got"), None);
        assert_eq!(version_of("", "got"), None);
    }

    #[test]
    fn overlong_input_is_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_USER_AGENT_BYTES);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_USER_AGENT_BYTES);
        assert!(cut.len() >= MAX_USER_AGENT_BYTES - 1);
        assert_eq!(bounded("  curl/8.5.0 \n"), "curl/8.5.0");
    }

    #[test]
    fn versions_are_bounded_and_printable() {
        assert_eq!(version_at("1.2.3 (x)"), Some("1.2.3".to_string()));
        assert_eq!(version_at(""), None);
        assert_eq!(version_at(&"9".repeat(MAX_VERSION_BYTES + 1)), None);
        assert_eq!(version_at("1\u{7}2"), None);
    }

    #[test]
    fn unknown_products_keep_name_and_version_only() {
        assert_eq!(
            unknown_product("example-client/1.0"),
            UserAgentInfo {
                name: Some("example-client".to_string()),
                version: Some("1.0".to_string()),
                ..UserAgentInfo::default()
            }
        );
        assert_eq!(unknown_product("Mozilla/5.0"), UserAgentInfo::default());
        assert_eq!(unknown_product("just words"), UserAgentInfo::default());
        assert_eq!(unknown_product("a b/c"), UserAgentInfo::default());
    }

    #[test]
    fn cache_returns_the_same_result_and_stays_bounded() {
        let parser = UserAgentParser::new(8);
        let first = parser.parse("curl/8.5.0");
        let second = parser.parse("curl/8.5.0");
        assert!(Arc::ptr_eq(&first, &second));
        for i in 0..1000 {
            parser.parse(&format!("tool-{i}/1.0"));
        }
        assert!(parser.cache.len() <= 8 + 1, "{}", parser.cache.len());
        assert_eq!(*parser.parse("curl/8.5.0"), *first);
    }
}
