//! Removing known secrets from text that came from the network.
//!
//! A destination, or a proxy in front of it, may echo what it was sent in
//! an error answer: the `Authorization` header, the `DD-API-KEY` header, the
//! request's query or path (a Sumo Logic URL is its own credential), a form
//! body with a client secret. claudit logs, stores and prints parts of those
//! answers, so each sink builds one [`Redactor`] from its configured secrets
//! (`sinks::redactor_for`) and every text a destination produces passes
//! through it before anything else sees it.
//!
//! A secret is recognised in the forms it travels in: as is, percent-encoded
//! (query strings, form bodies), JSON-escaped, and base64 (HTTP Basic
//! credentials, API keys). Matching ignores ASCII case (percent-encoding is
//! written in either case). A secret is recognised by its first
//! [`KEY_CHARS`] characters, and the match extends over as much of the rest
//! as follows: a secret cut short by a truncated message is removed too.
//! Secrets shorter than [`MIN_SECRET_CHARS`] are not looked for: removing
//! every "abc" would garble every message and hide nothing worth hiding.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// What a removed secret is replaced with.
pub const MARK: &str = "[REDACTED]";
/// Shorter secrets are not looked for.
pub const MIN_SECRET_CHARS: usize = 4;
/// A secret (in any of its forms) is recognised by this many leading bytes.
pub const KEY_CHARS: usize = 8;

/// The secrets of one sink (or source), in every form they may be echoed in.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Lower-cased forms of every secret, longest first, without duplicates.
    forms: Vec<String>,
    /// Secrets obtained at run time (an access token, temporary cloud
    /// credentials): the current set and the one before, so an answer to a
    /// request signed just before a refresh is covered too.
    session: [Vec<String>; 2],
    /// The forms of `session`, rebuilt when it changes.
    session_forms: Vec<String>,
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Whether nothing would be removed by this redactor.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty() && self.session_forms.is_empty()
    }

    /// Adds a secret and its encodings: as is, percent-encoded (RFC 3986
    /// and `application/x-www-form-urlencoded`), JSON-escaped (also with `/`
    /// escaped, as PHP writes it), and base64 (standard and URL-safe, with
    /// and without padding). Surrounding whitespace is ignored, as the
    /// headers that carry secrets trim it.
    pub fn add(&mut self, secret: &str) {
        for secret in [secret, secret.trim()] {
            if secret.chars().count() < MIN_SECRET_CHARS {
                continue;
            }
            let json = serde_json::to_string(secret).expect("a string serializes");
            let json = &json[1..json.len() - 1];
            let forms = [
                secret.to_string(),
                percent_encode(secret, false),
                percent_encode(secret, true),
                json.to_string(),
                json.replace('/', "\\/"),
                STANDARD.encode(secret),
                STANDARD_NO_PAD.encode(secret),
                URL_SAFE.encode(secret),
                URL_SAFE_NO_PAD.encode(secret),
            ];
            for form in forms {
                self.add_form(&form);
            }
        }
    }

    /// HTTP Basic credentials: the password, and `user:password` in base64
    /// (the `Authorization: Basic` value).
    pub fn add_basic_auth(&mut self, username: &str, password: &str) {
        self.add(password);
        self.add(&format!("{username}:{password}"));
    }

    /// A credential that is itself base64 of `id:key` (an Elasticsearch API
    /// key's `encoded` value): the value, its decoded form and the key.
    pub fn add_base64_credential(&mut self, encoded: &str) {
        let encoded = encoded.trim();
        self.add(encoded);
        let decoded = STANDARD
            .decode(encoded)
            .or_else(|_| URL_SAFE.decode(encoded))
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if let Some(decoded) = decoded {
            self.add(&decoded);
            if let Some((_, key)) = decoded.split_once(':') {
                self.add(key);
            }
        }
    }

    /// A URL that is its own credential (a Sumo Logic HTTP source): its
    /// path's last segment (the source's code), its query, and any
    /// `user:password` in it. The scheme and host are left readable.
    pub fn add_secret_url(&mut self, url: &str) {
        let Ok(parsed) = reqwest::Url::parse(url.trim()) else {
            // Not a URL after all: the whole text is the secret.
            self.add(url);
            return;
        };
        if let Some(segment) = parsed
            .path_segments()
            .and_then(|mut segments| segments.rfind(|s| !s.is_empty()))
        {
            self.add(segment);
            // The segment as it is in the URL may still be percent-encoded.
            if let Ok(decoded) = percent_decode(segment) {
                self.add(&decoded);
            }
        }
        if let Some(query) = parsed.query() {
            self.add(query);
        }
        if let Some(password) = parsed.password() {
            self.add(password);
        }
    }

    /// Replaces the secrets obtained at run time (a destination's access
    /// token, temporary credentials) with `secrets`; the previous set stays
    /// known until the next change. Cheap when nothing changed.
    pub fn learn_session_secrets(&mut self, secrets: Vec<String>) {
        if secrets == self.session[0] {
            return;
        }
        let previous = std::mem::replace(&mut self.session[0], secrets);
        self.session[1] = previous;
        let mut learned = Redactor::new();
        for secret in self.session.iter().flatten() {
            learned.add(secret);
        }
        self.session_forms = learned.forms;
    }

    fn add_form(&mut self, form: &str) {
        insert_form(&mut self.forms, form);
    }

    /// `text` with every known secret replaced by [`MARK`].
    pub fn redact(&self, text: &str) -> String {
        if self.is_empty() || text.len() < MIN_SECRET_CHARS {
            return text.to_string();
        }
        // ASCII lower-casing keeps every byte offset.
        let lower = text.to_ascii_lowercase();
        let hay = lower.as_bytes();
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for form in self.forms.iter().chain(&self.session_forms) {
            let key = &form[..key_len(form)];
            let mut from = 0;
            while let Some(at) = lower[from..].find(key) {
                let start = from + at;
                let mut end = start + key.len();
                let rest = &form.as_bytes()[key.len()..];
                let mut i = 0;
                while i < rest.len() && end < hay.len() && hay[end] == rest[i] {
                    end += 1;
                    i += 1;
                }
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                ranges.push((start, end));
                from = end;
            }
        }
        if ranges.is_empty() {
            return text.to_string();
        }
        ranges.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for (start, end) in ranges {
            if end <= copied {
                continue;
            }
            if start >= copied {
                out.push_str(&text[copied..start]);
                out.push_str(MARK);
            }
            copied = end;
        }
        out.push_str(&text[copied..]);
        out
    }
}

/// Inserts the lower-cased `form` into `forms` (longest first), unless it
/// is there already or too short.
fn insert_form(forms: &mut Vec<String>, form: &str) {
    let form = form.to_ascii_lowercase();
    if form.chars().count() < MIN_SECRET_CHARS || forms.contains(&form) {
        return;
    }
    let at = forms
        .iter()
        .position(|f| f.len() < form.len())
        .unwrap_or(forms.len());
    forms.insert(at, form);
}

/// How many leading bytes of `form` recognise it: [`KEY_CHARS`], or all of
/// a shorter form, cut back to a character boundary.
fn key_len(form: &str) -> usize {
    let mut n = form.len().min(KEY_CHARS);
    while !form.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// Percent-encodes every byte outside RFC 3986's unreserved set; `form`
/// follows `application/x-www-form-urlencoded` instead (`*` kept, `~`
/// encoded, space as `+`).
fn percent_encode(text: &str, form: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for &b in text.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_')
            || (!form && b == b'~')
            || (form && b == b'*');
        if keep {
            out.push(b as char);
        } else if form && b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str) -> Result<String, ()> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        let mut r = Redactor::new();
        for s in secrets {
            r.add(s);
        }
        r
    }

    #[test]
    fn removes_a_secret_in_every_encoding() {
        let secret = "Cn8Q~a/b+c\"d e";
        let r = redactor(&[secret]);
        let json = serde_json::to_string(secret).unwrap();
        let cases = [
            format!("token {secret} refused"),
            format!(
                "query client_secret={} refused",
                percent_encode(secret, true)
            ),
            format!("path /{} refused", percent_encode(secret, false)),
            format!(
                "path /{} refused",
                percent_encode(secret, false).to_lowercase()
            ),
            format!("{{\"echo\":{json}}}"),
            format!("{{\"echo\":{}}}", json.replace('/', "\\/")),
            format!("Basic {}", STANDARD.encode(secret)),
            format!("b64url {}", URL_SAFE_NO_PAD.encode(secret)),
        ];
        for text in cases {
            let out = r.redact(&text);
            assert!(out.contains(MARK), "{text} -> {out}");
            for form in &r.forms {
                assert!(
                    !out.to_ascii_lowercase().contains(form.as_str()),
                    "{text} -> {out}"
                );
            }
        }
    }

    #[test]
    fn keeps_the_text_around_a_secret() {
        let r = redactor(&["s3cr3t-T0KEN-value"]);
        assert_eq!(
            r.redact("HTTP 401: bad token s3cr3t-T0KEN-value, try again"),
            "HTTP 401: bad token [REDACTED], try again"
        );
        assert_eq!(
            r.redact("twice: S3CR3T-t0ken-VALUE and s3cr3t-T0KEN-value."),
            "twice: [REDACTED] and [REDACTED]."
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert_eq!(
            Redactor::new().redact("s3cr3t-T0KEN-value"),
            "s3cr3t-T0KEN-value"
        );
    }

    #[test]
    fn a_secret_cut_by_truncation_is_removed_from_its_first_characters() {
        let r = redactor(&["0123456789abcdef0123456789abcdef"]);
        assert_eq!(
            r.redact("echo: 0123456789abc... (900 bytes)"),
            "echo: [REDACTED]... (900 bytes)"
        );
        // Fewer than KEY_CHARS characters of it say nothing.
        assert_eq!(r.redact("echo: 0123456..."), "echo: 0123456...");
    }

    #[test]
    fn short_secrets_match_whole_and_tiny_ones_are_ignored() {
        let r = redactor(&["hunter2", "ab"]);
        assert_eq!(
            r.redact("password hunter2 and hunter and ab"),
            "password [REDACTED] and hunter and ab"
        );
    }

    #[test]
    fn basic_auth_and_api_key_credentials() {
        let mut r = Redactor::new();
        r.add_basic_auth("elastic", "pa55-w0rd!");
        let header = format!("Basic {}", STANDARD.encode("elastic:pa55-w0rd!"));
        assert_eq!(r.redact(&header), "Basic [REDACTED]");
        assert_eq!(r.redact("user elastic"), "user elastic");

        let mut r = Redactor::new();
        let encoded = STANDARD.encode("VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw");
        r.add_base64_credential(&encoded);
        for text in [
            format!("ApiKey {encoded}"),
            "key VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw".to_string(),
            "key ui2lp2axTNmsyakw9tvNnw".to_string(),
        ] {
            assert!(!r.redact(&text).contains("ui2lp2ax"), "{text}");
        }
    }

    #[test]
    fn a_secret_url_keeps_its_host_readable() {
        let mut r = Redactor::new();
        r.add_secret_url(
            "https://endpoint4.collection.sumologic.com/receiver/v1/http/ZaVnC4dhaV3_abc%3D%3D",
        );
        assert_eq!(
            r.redact(
                "POST https://endpoint4.collection.sumologic.com/receiver/v1/http/ZaVnC4dhaV3_abc%3D%3D"
            ),
            "POST https://endpoint4.collection.sumologic.com/receiver/v1/http/[REDACTED]"
        );
        assert_eq!(r.redact("code ZaVnC4dhaV3_abc=="), "code [REDACTED]");
    }

    #[test]
    fn session_secrets_are_replaced_keeping_the_previous_set() {
        let mut r = redactor(&["configured-secret"]);
        r.learn_session_secrets(vec!["token-one-abcdef".into()]);
        r.learn_session_secrets(vec!["token-two-abcdef".into()]);
        assert_eq!(
            r.redact("configured-secret token-one-abcdef token-two-abcdef"),
            "[REDACTED] [REDACTED] [REDACTED]"
        );
        r.learn_session_secrets(vec!["token-three-abcdef".into()]);
        assert_eq!(
            r.redact("token-one-abcdef token-three-abcdef"),
            "token-one-abcdef [REDACTED]"
        );
    }

    #[test]
    fn overlapping_and_multibyte_matches_stay_valid_text() {
        let r = redactor(&["élan-secret-1234", "secret-1234-x"]);
        assert_eq!(r.redact("a élan-secret-1234-x b"), "a [REDACTED] b");
        assert_eq!(r.redact("é élan-secré"), "é [REDACTED]é");
    }
}
