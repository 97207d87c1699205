//! Identifiers: activity ids, other tagged ids, request ids and cursors.
//!
//! An activity id is `activity_01` + 11 Crockford base32 characters of the
//! `created_at` microseconds + 13 characters of a random 64-bit suffix. The
//! alphabet is in ASCII order, so ids sort like `(created_at, suffix)`, which
//! is the feed's order (created_at, ties broken by id). The simulator can
//! thus turn any id (or cursor) back into a position without a lookup table.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub(crate) const ACTIVITY_PREFIX: &str = "activity_01";
const TIME_CHARS: usize = 11; // 55 bits: microseconds up to the year 3111
const SUFFIX_CHARS: usize = 13; // 65 bits: any u64

/// The position of a record in the feed's total order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub created: i64,
    pub suffix: u64,
}

fn push_base32(out: &mut String, value: u128, chars: usize) {
    for i in (0..chars).rev() {
        out.push(CROCKFORD[((value >> (5 * i)) & 31) as usize] as char);
    }
}

fn parse_base32(s: &str) -> Option<u128> {
    let mut v: u128 = 0;
    for b in s.bytes() {
        let d = CROCKFORD.iter().position(|c| *c == b)? as u128;
        v = (v << 5) | d;
    }
    Some(v)
}

pub(crate) fn activity_id(key: Key) -> String {
    let mut s = String::with_capacity(ACTIVITY_PREFIX.len() + TIME_CHARS + SUFFIX_CHARS);
    s.push_str(ACTIVITY_PREFIX);
    push_base32(&mut s, key.created.max(0) as u128, TIME_CHARS);
    push_base32(&mut s, u128::from(key.suffix), SUFFIX_CHARS);
    s
}

/// The key an activity id encodes, if `id` has the simulator's id shape.
pub(crate) fn parse_activity_id(id: &str) -> Option<Key> {
    let rest = id.strip_prefix(ACTIVITY_PREFIX)?;
    if rest.len() != TIME_CHARS + SUFFIX_CHARS || !rest.is_ascii() {
        return None;
    }
    let created = parse_base32(&rest[..TIME_CHARS])?;
    let suffix = parse_base32(&rest[TIME_CHARS..])?;
    Some(Key {
        created: i64::try_from(created).ok()?,
        suffix: u64::try_from(suffix).ok()?,
    })
}

fn push_base62(out: &mut String, bits: u64, chars: usize) {
    let mut x = bits;
    for i in 0..chars {
        if i > 0 && i % 10 == 0 {
            // 10 base62 digits use ~60 bits; re-mix for the next ones.
            x = crate::sim::rng::mix(bits.wrapping_add(i as u64));
        }
        out.push(BASE62[(x % 62) as usize] as char);
        x /= 62;
    }
}

/// `prefix` + `01` + 22 base62 characters derived from `bits`, the shape of
/// the API's tagged ids (`claude_chat_01XyDMpzjS89pFZXqSFUBDr6`).
pub(crate) fn tagged_id(prefix: &str, bits: u64) -> String {
    let mut s = String::with_capacity(prefix.len() + 24);
    s.push_str(prefix);
    s.push_str("01");
    push_base62(&mut s, bits, 22);
    s
}

/// A UUID-shaped string (version 4 layout) derived from `bits`.
pub(crate) fn uuid_from(bits: u64) -> String {
    let a = crate::sim::rng::mix(bits);
    let b = crate::sim::rng::mix(bits ^ 0x5DEE_CE66_D1CE_4E5B);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// `req_` + 24 base62 characters, the shape of the API's `request-id`.
pub(crate) fn request_id(bits: u64) -> String {
    let mut s = String::with_capacity(28);
    s.push_str("req_");
    push_base62(&mut s, bits, 24);
    s
}

/// A page cursor: the position of a record plus the time it was issued
/// (for `cursor_ttl`), as base64url JSON, like the API's opaque cursors.
pub(crate) fn encode_cursor(key: Key, issued_micros: i64) -> String {
    let json = format!(r#"{{"id":"{}","iat":{}}}"#, activity_id(key), issued_micros);
    URL_SAFE_NO_PAD.encode(json)
}

/// What a cursor parameter turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CursorValue {
    /// One of our cursors: a position and when it was issued.
    Issued { key: Key, issued_micros: i64 },
    /// A raw activity id, accepted as a cursor (the API accepts both forms).
    RawId(Key),
}

pub(crate) fn decode_cursor(value: &str) -> Option<CursorValue> {
    if value.starts_with(ACTIVITY_PREFIX) {
        return parse_activity_id(value).map(CursorValue::RawId);
    }
    let bytes = URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).ok()?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        id: String,
        iat: i64,
    }
    let raw: Raw = serde_json::from_slice(&bytes).ok()?;
    Some(CursorValue::Issued {
        key: parse_activity_id(&raw.id)?,
        issued_micros: raw.iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_ids_round_trip_and_sort_like_keys() {
        let keys = [
            Key {
                created: 0,
                suffix: 0,
            },
            Key {
                created: 1_778_242_691_000_538,
                suffix: 5,
            },
            Key {
                created: 1_778_242_691_000_538,
                suffix: u64::MAX,
            },
            Key {
                created: 1_778_242_691_000_539,
                suffix: 0,
            },
        ];
        let ids: Vec<String> = keys.iter().map(|k| activity_id(*k)).collect();
        for (k, id) in keys.iter().zip(&ids) {
            assert_eq!(id.len(), "activity_01".len() + 24);
            assert_eq!(parse_activity_id(id), Some(*k));
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "string order equals key order");
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "activity_01",
            "activity_01XyDMpzjS89pFZXqSFUBDr6", // real-looking, but lowercase/base62
            "activity_01ZZZZZZZZZZZZZZZZZZZZZZZZ", // the 13-char suffix overflows u64
            "user_01ABCDEFGHJKMNPQRSTVWXYZ01",
        ] {
            assert_eq!(parse_activity_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        let key = Key {
            created: 1_700_000_000_123_456,
            suffix: 42,
        };
        let c = encode_cursor(key, 99);
        assert_eq!(
            decode_cursor(&c),
            Some(CursorValue::Issued {
                key,
                issued_micros: 99
            })
        );
        assert_eq!(
            decode_cursor(&activity_id(key)),
            Some(CursorValue::RawId(key))
        );
        for bad in [
            "",
            "!!!",
            "bm90IGpzb24",
            &URL_SAFE_NO_PAD.encode(r#"{"id":"x","iat":1}"#),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn other_id_shapes() {
        let id = tagged_id("claude_chat_", 12345);
        assert!(id.starts_with("claude_chat_01"));
        assert_eq!(id.len(), "claude_chat_01".len() + 22);
        let u = uuid_from(7);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let r = request_id(1);
        assert!(r.starts_with("req_") && r.len() == 4 + 24, "{r}");
        assert_ne!(request_id(1), request_id(2));
    }
}
