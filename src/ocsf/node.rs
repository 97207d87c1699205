//! The OCSF event while it is built: a JSON tree whose keys are static names
//! (or the record's own keys, in `unmapped`) and whose values borrow from the
//! activity wherever they can. Serializing it straight to bytes costs a
//! fraction of building a `serde_json::Value` (one allocation per object
//! instead of one per key and value, and no copy of large source fields);
//! [`Node::into_value`] gives the `Value` for callers that want one. Both
//! hold the same JSON; the serialized form keeps keys in the order they were
//! set, the `Value` sorts them (as `serde_json::Map` does).

use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
pub enum Node<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    String(String),
    /// A source value kept whole (a field of `unmapped`).
    Source(&'a Value),
    /// Constant JSON text, written as it is: the parts every event carries
    /// unchanged (`metadata.product`), built and written once instead of per
    /// event.
    Json(&'static str),
    Array(Vec<Node<'a>>),
    Object(Obj<'a>),
}

/// A JSON object as a list of entries, in the order they were set; keys are
/// unique ([`Obj::set`] replaces).
#[derive(Debug, Clone, Default)]
pub struct Obj<'a>(Vec<(&'a str, Node<'a>)>);

impl<'a> Obj<'a> {
    pub fn new() -> Obj<'a> {
        Obj(Vec::new())
    }

    pub fn with_capacity(capacity: usize) -> Obj<'a> {
        Obj(Vec::with_capacity(capacity))
    }

    /// Sets `key`, replacing an earlier value.
    pub fn set(&mut self, key: &'a str, value: impl Into<Node<'a>>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.append(key, value),
        }
    }

    /// Adds an entry at the end. An event's objects mostly hold two to
    /// eight entries: room for eight from the start spares most of them the
    /// reallocation at the fifth.
    fn append(&mut self, key: &'a str, value: Node<'a>) {
        if self.0.capacity() == 0 {
            self.0.reserve(8);
        }
        self.0.push((key, value));
    }

    /// Appends a key that cannot be present yet (the keys of a source
    /// object, which are unique), without the search `set` does.
    pub fn push(&mut self, key: &'a str, value: impl Into<Node<'a>>) {
        debug_assert!(!self.contains_key(key), "duplicate key {key}");
        self.append(key, value.into());
    }

    /// `set`, for building an object in one expression.
    pub fn with(mut self, key: &'a str, value: impl Into<Node<'a>>) -> Obj<'a> {
        self.set(key, value);
        self
    }

    /// Sets `key` if `value` is present.
    pub fn set_opt<V: Into<Node<'a>>>(&mut self, key: &'a str, value: Option<V>) {
        if let Some(v) = value {
            self.set(key, v);
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The object at `key`, created empty if absent (or if `key` held
    /// something else).
    pub fn object_mut(&mut self, key: &'a str) -> &mut Obj<'a> {
        let index = match self.0.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                if !matches!(self.0[i].1, Node::Object(_)) {
                    self.0[i].1 = Node::Object(Obj::new());
                }
                i
            }
            None => {
                self.0.push((key, Node::Object(Obj::new())));
                self.0.len() - 1
            }
        };
        match &mut self.0[index].1 {
            Node::Object(o) => o,
            _ => unreachable!("set to an object above"),
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets every entry of `other`.
    pub fn extend(&mut self, other: Obj<'a>) {
        for (k, v) in other.0 {
            self.set(k, v);
        }
    }
}

impl<'a> Node<'a> {
    /// The string, if it is one borrowed from the activity (or static).
    pub fn as_borrowed_str(&self) -> Option<&'a str> {
        match self {
            Node::Str(s) => Some(s),
            Node::Source(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn into_value(self) -> Value {
        match self {
            Node::Bool(b) => Value::Bool(b),
            Node::Int(n) => Value::from(n),
            Node::Float(f) => Value::from(f),
            Node::Str(s) => Value::String(s.to_string()),
            Node::String(s) => Value::String(s),
            Node::Source(v) => v.clone(),
            Node::Json(text) => match serde_json::from_str(text) {
                Ok(value) => value,
                Err(e) => unreachable!("constant JSON {text} does not parse: {e}"),
            },
            Node::Array(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            Node::Object(o) => Value::Object(
                o.0.into_iter()
                    .map(|(k, v)| (k.to_string(), v.into_value()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

impl Node<'_> {
    /// Appends the node as compact JSON: the bytes `serde_json::to_writer`
    /// would write, without going through a `Serializer` per value (the
    /// event is written once per activity, and most of its strings need no
    /// escaping).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Node::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Node::Int(n) => write_serde(out, n),
            Node::Float(f) => write_serde(out, f),
            Node::Str(s) => write_str(out, s),
            Node::String(s) => write_str(out, s),
            Node::Source(v) => write_value(out, v),
            Node::Json(text) => out.extend_from_slice(text.as_bytes()),
            Node::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Node::Object(o) => {
                out.push(b'{');
                for (i, (k, v)) in o.0.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, k);
                    out.push(b':');
                    v.write_json(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// A source value as compact JSON, as serde_json writes it (objects in the
/// map's own key order).
fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_serde(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_value(out, v);
            }
            out.push(b'}');
        }
    }
}

/// A JSON string. Strings without a character JSON must escape (nearly all
/// of them) are copied as they are; the rest go through serde_json.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s) {
        write_serde(out, s);
    } else {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Whether `s` holds a control character, a quote or a backslash: the bytes
/// serde_json escapes. Checks eight bytes at a time (the last word overlaps
/// the one before it rather than being checked byte by byte).
fn needs_escape(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() < 8 {
        return bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    }
    let word = |chunk: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        u64::from_le_bytes(w)
    };
    let mut found = escape_bytes(word(&bytes[bytes.len() - 8..]));
    for chunk in bytes.chunks_exact(8) {
        found |= escape_bytes(word(chunk));
    }
    found != 0
}

/// Non-zero iff a byte of `x` is below 0x20, a quote or a backslash (the
/// classic "has zero byte" and "has byte less than" word tests; exact as a
/// yes/no answer, bytes of 0x80 and above never count).
fn escape_bytes(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    below_space | has_zero(x ^ (ONES * u64::from(b'"'))) | has_zero(x ^ (ONES * u64::from(b'\\')))
}

/// A number or an escaped string, written by serde_json itself so that its
/// formatting is exactly serde_json's.
fn write_serde<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing numbers and strings to a Vec cannot fail (a non-finite float
    // becomes null).
    if let Err(e) = serde_json::to_writer(out, value) {
        unreachable!("writing JSON to memory failed: {e}");
    }
}

impl<'a> From<&'a str> for Node<'a> {
    fn from(s: &'a str) -> Node<'a> {
        Node::Str(s)
    }
}

impl From<String> for Node<'_> {
    fn from(s: String) -> Self {
        Node::String(s)
    }
}

impl From<bool> for Node<'_> {
    fn from(b: bool) -> Self {
        Node::Bool(b)
    }
}

impl From<i64> for Node<'_> {
    fn from(n: i64) -> Self {
        Node::Int(n)
    }
}

impl From<u32> for Node<'_> {
    fn from(n: u32) -> Self {
        Node::Int(i64::from(n))
    }
}

impl From<u16> for Node<'_> {
    fn from(n: u16) -> Self {
        Node::Int(i64::from(n))
    }
}

impl From<u8> for Node<'_> {
    fn from(n: u8) -> Self {
        Node::Int(i64::from(n))
    }
}

impl From<f64> for Node<'_> {
    fn from(f: f64) -> Self {
        Node::Float(f)
    }
}

impl<'a> From<Obj<'a>> for Node<'a> {
    fn from(o: Obj<'a>) -> Node<'a> {
        Node::Object(o)
    }
}

impl<'a> From<Vec<Node<'a>>> for Node<'a> {
    fn from(items: Vec<Node<'a>>) -> Node<'a> {
        Node::Array(items)
    }
}

impl<'a> From<&'a Value> for Node<'a> {
    fn from(v: &'a Value) -> Node<'a> {
        Node::Source(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json_text(node: &Node) -> String {
        let mut out = Vec::new();
        node.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn serializes_like_the_value_it_converts_to() {
        let source = json!({"z": [1, {"b": null, "a": "x"}], "big": 18446744073709551615u64});
        let node = Node::Object(
            Obj::new()
                .with("name", "n")
                .with("count", 3u8)
                .with("neg", -4i64)
                .with("ratio", 0.5)
                .with("flag", true)
                .with("owned", String::from("o"))
                .with("list", vec![Node::from("a"), Node::Int(1)])
                .with("source", &source)
                .with("inner", Obj::new().with("b", 2u8).with("a", 1u8))
                .with("constant", Node::Json(r#"{"k":["v",1]}"#)),
        );
        let text = json_text(&node);
        assert!(text.starts_with(r#"{"name":"n","count":3,"#), "{text}");
        let value = node.into_value();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
        assert_eq!(value["inner"], json!({"a": 1, "b": 2}));
        assert_eq!(value["source"]["big"], json!(18446744073709551615u64));
        assert_eq!(value["constant"], json!({"k": ["v", 1]}));
    }

    #[test]
    fn set_replaces_and_object_mut_creates() {
        let mut o = Obj::new().with("a", 1u8);
        o.set("b", 0u8);
        o.set("a", 2u8);
        o.set("b", 3u8);
        assert_eq!(o.get("a").map(|n| matches!(n, Node::Int(2))), Some(true));
        o.object_mut("idp").set("name", "x");
        o.object_mut("idp").set("uid", "y");
        let node = Node::Object(o);
        let text = json_text(&node);
        assert_eq!(text, r#"{"a":2,"b":3,"idp":{"name":"x","uid":"y"}}"#);
        let v = node.into_value();
        assert_eq!(v, json!({"a": 2, "b": 3, "idp": {"name": "x", "uid": "y"}}));
    }

    /// Strings are written exactly as serde_json writes them, escaped or not,
    /// and source values byte for byte as serde_json prints them.
    #[test]
    fn writes_strings_and_values_as_serde_json_does() {
        let strings = [
            "",
            "plain",
            "quote \" inside",
            "back\\slash",
            "tab\tnew\nline\r\u{8}\u{c}",
            "\u{0}\u{1f}\u{7f}",
            "ünïcödé ✓ 𝄞",
            "/slash/ is not escaped",
            "a long string with a quote at the very end of it, past sixteen bytes\"",
        ];
        for s in strings {
            assert_eq!(
                json_text(&Node::Str(s)),
                serde_json::to_string(s).unwrap(),
                "{s:?}"
            );
            assert_eq!(
                json_text(&Node::String(s.to_string())),
                serde_json::to_string(s).unwrap()
            );
        }
        let source = json!({
            "k\"ey": ["a\\b", 1.5, -0.0, 1e300, -7, 18446744073709551615u64, null, true, false],
            "nested": {"z": {}, "a": [], "m": "x\u{1}"},
        });
        assert_eq!(
            json_text(&Node::Source(&source)),
            serde_json::to_string(&source).unwrap()
        );
        let node = Node::Object(
            Obj::new()
                .with("f", 0.1)
                .with("nan", f64::NAN)
                .with("i", i64::MIN)
                .with("q\"", "v"),
        );
        assert_eq!(
            json_text(&node),
            r#"{"f":0.1,"nan":null,"i":-9223372036854775808,"q\"":"v"}"#
        );
    }

    /// The word-at-a-time check agrees with a byte-by-byte one for every
    /// byte value at every position of strings of 1 to 20 bytes.
    #[test]
    fn escape_check_matches_the_byte_rule() {
        for len in 1..=20 {
            for at in 0..len {
                for b in 0..=0x7fu8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    let s = std::str::from_utf8(&bytes).unwrap();
                    let expected = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(s), expected, "{s:?}");
                }
                // Multi-byte characters around a quote, at every character position.
                let s: String = (0..len).map(|i| if i == at { '"' } else { 'é' }).collect();
                assert!(needs_escape(&s), "{s:?}");
                assert!(!needs_escape(&"é✓".repeat(len)));
            }
        }
    }
}
