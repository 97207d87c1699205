//! Read access to an activity's fields that remembers what was placed in the
//! OCSF event, so that everything else can go to `unmapped` with its source
//! name and nesting (invariant 6: nothing unconsumed is dropped).
//!
//! A field counts as consumed only when the mapper actually placed its value
//! (a non-empty string, an integer): a field of an unexpected JSON type is
//! left alone and therefore lands in `unmapped` unchanged.

use serde_json::{Map, Value};

use super::node::{Node, Obj};

/// Where a consumed value was in the source record. The keys are the
/// record's own key strings, so two paths are the same when they point at the
/// same key: comparing addresses instead of contents keeps the bookkeeping
/// cheap (it runs for every field of every record).
#[derive(Debug, Clone, Copy)]
enum Path<'a> {
    Top(&'a str),
    Nested(&'a str, &'a str),
}

impl PartialEq for Path<'_> {
    fn eq(&self, other: &Self) -> bool {
        fn same(a: &str, b: &str) -> bool {
            std::ptr::eq(a, b)
        }
        match (self, other) {
            (Path::Top(a), Path::Top(b)) => same(a, b),
            (Path::Nested(a, x), Path::Nested(b, y)) => same(a, b) && same(x, y),
            _ => false,
        }
    }
}

pub struct Source<'a> {
    /// The record's top-level entries, in the record's (sorted) order.
    top: Vec<(&'a str, &'a Value)>,
    /// The entries one level down, each with the record's own key of the
    /// object holding it. Both lists are searched by equality, which for
    /// records of a few dozen fields is cheaper than the map's ordered search
    /// (that compares the bytes of every key it passes); the mapper looks up
    /// some thirty fields per record.
    nested: Vec<(&'a str, &'a str, &'a Value)>,
    consumed: Vec<Path<'a>>,
}

impl<'a> Source<'a> {
    pub fn new(fields: &'a Map<String, Value>) -> Source<'a> {
        let mut top = Vec::with_capacity(fields.len());
        let mut nested = Vec::new();
        for (key, value) in fields {
            top.push((key.as_str(), value));
            if let Value::Object(inner) = value {
                nested.extend(inner.iter().map(|(k, v)| (key.as_str(), k.as_str(), v)));
            }
        }
        Source {
            top,
            nested,
            consumed: Vec::with_capacity(16),
        }
    }

    /// The top-level entry named `key`, with the record's own key string.
    fn entry(&self, key: &str) -> Option<(&'a str, &'a Value)> {
        self.top.iter().find(|(k, _)| *k == key).copied()
    }

    /// The entry `key` of the top-level object `top`, with the record's own
    /// key strings.
    fn nested_entry(&self, top: &str, key: &str) -> Option<(&'a str, &'a str, &'a Value)> {
        let (t, _) = self.entry(top)?;
        self.nested
            .iter()
            .find(|(parent, k, _)| *k == key && std::ptr::eq(*parent, t))
            .copied()
    }

    /// A top-level non-empty string, without consuming it.
    pub fn peek_str(&self, key: &str) -> Option<&'a str> {
        non_empty_str(self.peek(key))
    }

    /// A top-level value, without consuming it.
    pub fn peek(&self, key: &str) -> Option<&'a Value> {
        self.entry(key).map(|(_, v)| v)
    }

    /// A nested non-empty string (`actor.type`), without consuming it.
    pub fn peek_nested_str(&self, top: &str, key: &str) -> Option<&'a str> {
        non_empty_str(self.nested_entry(top, key).map(|(_, _, v)| v))
    }

    /// Consumes a top-level non-empty string. A field already placed
    /// elsewhere is not handed out twice.
    pub fn str(&mut self, key: &str) -> Option<&'a str> {
        let (k, v) = self.entry(key)?;
        let s = non_empty_str(Some(v))?;
        if self.is_consumed(k) {
            return None;
        }
        self.consumed.push(Path::Top(k));
        Some(s)
    }

    /// `key` must be one of the record's own keys (see [`Path`]).
    fn is_consumed(&self, key: &str) -> bool {
        self.consumed.contains(&Path::Top(key))
    }

    /// Consumes the first present non-empty string among `keys`.
    pub fn first_str(&mut self, keys: &[&str]) -> Option<&'a str> {
        keys.iter().find_map(|k| self.str(k))
    }

    /// Consumes the string field named after the noun: `<tail><suffix>` for
    /// the longest `_`-separated tail of `noun` that has one
    /// (`platform_signing_key` + `_id` finds `signing_key_id`). This is how an
    /// object's own id is found without listing every field name by hand.
    pub fn named_after(&mut self, noun: &str, suffix: &str) -> Option<&'a str> {
        let mut best: Option<(&'a str, usize)> = None;
        for &(key, value) in &self.top {
            let Some(stem) = key.strip_suffix(suffix) else {
                continue;
            };
            let Some(head) = noun.strip_suffix(stem) else {
                continue;
            };
            if stem.is_empty()
                || !(head.is_empty() || head.ends_with('_'))
                || non_empty_str(Some(value)).is_none()
                || self.is_consumed(key)
            {
                continue;
            }
            if best.is_none_or(|(_, len)| stem.len() > len) {
                best = Some((key, stem.len()));
            }
        }
        self.str(best?.0)
    }

    /// Consumes a top-level integer.
    pub fn int(&mut self, key: &str) -> Option<i64> {
        let (k, v) = self.entry(key)?;
        let n = v.as_i64()?;
        if self.is_consumed(k) {
            return None;
        }
        self.consumed.push(Path::Top(k));
        Some(n)
    }

    /// Consumes a non-empty string one level down (`actor.user_id`).
    pub fn nested_str(&mut self, top: &str, key: &str) -> Option<&'a str> {
        let (t, k, v) = self.nested_entry(top, key)?;
        let s = non_empty_str(Some(v))?;
        if self.consumed.contains(&Path::Nested(t, k)) {
            return None;
        }
        self.consumed.push(Path::Nested(t, k));
        Some(s)
    }

    /// Marks a top-level key as placed by the caller (for values placed
    /// whole, such as a string array).
    pub fn consume(&mut self, key: &str) {
        if let Some((k, _)) = self.entry(key)
            && !self.is_consumed(k)
        {
            self.consumed.push(Path::Top(k));
        }
    }

    /// A position to roll back to if a class builder gives up.
    pub fn checkpoint(&self) -> usize {
        self.consumed.len()
    }

    /// Forgets what was consumed after `checkpoint`: those values were not
    /// placed after all and must reach `unmapped`.
    pub fn rollback(&mut self, checkpoint: usize) {
        self.consumed.truncate(checkpoint);
    }

    /// Every source field not consumed, with its source name and nesting.
    /// Objects that lost some keys keep the rest; objects emptied by
    /// consumption are left out (an object that was empty in the source is
    /// kept as it was). Values are borrowed, not copied.
    pub fn unmapped(&self) -> Obj<'a> {
        let mut out = Obj::with_capacity(self.top.len());
        for &(key, value) in &self.top {
            if self.consumed.contains(&Path::Top(key)) {
                continue;
            }
            let nested_consumed = self
                .consumed
                .iter()
                .any(|p| matches!(p, Path::Nested(t, _) if std::ptr::eq(*t, key)));
            match value {
                Value::Object(inner) if nested_consumed => {
                    let mut rest = Obj::with_capacity(inner.len());
                    for (k, v) in inner {
                        if !self.consumed.contains(&Path::Nested(key, k)) {
                            rest.push(k, Node::Source(v));
                        }
                    }
                    if !rest.is_empty() {
                        out.push(key, rest);
                    }
                }
                _ => out.push(key, Node::Source(value)),
            }
        }
        out
    }
}

fn non_empty_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn unmapped(s: &Source) -> Value {
        Node::Object(s.unmapped()).into_value()
    }

    fn fields(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn unconsumed_fields_keep_names_and_nesting() {
        let f = fields(json!({
            "a": "x", "b": 1, "c": {"d": "y", "e": "z"}, "empty": {}, "blank": "", "n": null
        }));
        let mut s = Source::new(&f);
        assert_eq!(s.str("a"), Some("x"));
        assert_eq!(s.nested_str("c", "d"), Some("y"));
        assert_eq!(s.str("blank"), None);
        assert_eq!(s.str("b"), None, "an integer is not a string");
        assert_eq!(
            unmapped(&s),
            json!({"b": 1, "c": {"e": "z"}, "empty": {}, "blank": "", "n": null})
        );
    }

    #[test]
    fn rollback_returns_values_to_unmapped() {
        let f = fields(json!({"a": "x", "b": "y"}));
        let mut s = Source::new(&f);
        s.str("a");
        let cp = s.checkpoint();
        s.str("b");
        s.rollback(cp);
        assert_eq!(unmapped(&s), json!({"b": "y"}));
    }

    #[test]
    fn finds_fields_named_after_the_noun() {
        let f = fields(json!({"signing_key_id": "k1", "key_id": "k2", "organization_id": "o"}));
        let mut s = Source::new(&f);
        assert_eq!(s.named_after("platform_signing_key", "_id"), Some("k1"));
        assert_eq!(s.named_after("platform_signing_key", "_id"), Some("k2"));
        assert_eq!(s.named_after("platform_signing_key", "_id"), None);
        assert_eq!(
            s.named_after("bikey", "_id"),
            None,
            "tails split at underscores"
        );
    }

    #[test]
    fn emptied_objects_are_left_out() {
        let f = fields(json!({"actor": {"user_id": "u"}}));
        let mut s = Source::new(&f);
        s.nested_str("actor", "user_id");
        assert!(s.unmapped().is_empty());
    }
}
