//! The OCSF event while it is built: a JSON tree whose keys are static names
//! (or the record's own keys, in `unmapped`) and whose values borrow from the
//! activity wherever they can. Serializing it straight to bytes costs a
//! fraction of building a `serde_json::Value` (one allocation per object
//! instead of one per key and value, and no copy of large source fields);
//! [`Node::into_value`] gives the `Value` for callers that want one. Both
//! hold the same JSON; the serialized form keeps keys in the order they were
//! set, the `Value` sorts them (as `serde_json::Map` does).

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
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
            None => self.0.push((key, value)),
        }
    }

    /// Appends a key that cannot be present yet (the keys of a source
    /// object, which are unique), without the search `set` does.
    pub fn push(&mut self, key: &'a str, value: impl Into<Node<'a>>) {
        debug_assert!(!self.contains_key(key), "duplicate key {key}");
        self.0.push((key, value.into()));
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
            Node::Array(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            Node::Object(o) => Value::Object(
                o.0.into_iter()
                    .map(|(k, v)| (k.to_string(), v.into_value()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Bool(b) => serializer.serialize_bool(*b),
            Node::Int(n) => serializer.serialize_i64(*n),
            Node::Float(f) => serializer.serialize_f64(*f),
            Node::Str(s) => serializer.serialize_str(s),
            Node::String(s) => serializer.serialize_str(s),
            Node::Source(v) => v.serialize(serializer),
            Node::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Object(o) => {
                let mut map = serializer.serialize_map(Some(o.0.len()))?;
                for (k, v) in &o.0 {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
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
                .with("inner", Obj::new().with("b", 2u8).with("a", 1u8)),
        );
        let text = serde_json::to_string(&node).unwrap();
        assert!(text.starts_with(r#"{"name":"n","count":3,"#), "{text}");
        let value = node.into_value();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
        assert_eq!(value["inner"], json!({"a": 1, "b": 2}));
        assert_eq!(value["source"]["big"], json!(18446744073709551615u64));
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
        let text = serde_json::to_string(&node).unwrap();
        assert_eq!(text, r#"{"a":2,"b":3,"idp":{"name":"x","uid":"y"}}"#);
        let v = node.into_value();
        assert_eq!(v, json!({"a": 2, "b": 3, "idp": {"name": "x", "uid": "y"}}));
    }
}
