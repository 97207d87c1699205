//! A minimal JSON object writer. Pages of 5,000 records are rendered on
//! every request, so records are written straight into the response buffer
//! (in the API's field order) instead of being built as `serde_json::Value`s.

use serde_json::Value;

/// Appends `s` as a JSON string literal.
pub(crate) fn push_str_lit(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

pub(crate) struct ObjWriter<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> ObjWriter<'a> {
    pub(crate) fn new(out: &'a mut String) -> ObjWriter<'a> {
        out.push('{');
        ObjWriter { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_str_lit(self.out, k);
        self.out.push(':');
    }

    pub(crate) fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        push_str_lit(self.out, v);
    }

    pub(crate) fn opt_str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(v) => self.str(k, v),
            None => self.null(k),
        }
    }

    pub(crate) fn null(&mut self, k: &str) {
        self.key(k);
        self.out.push_str("null");
    }

    pub(crate) fn bool(&mut self, k: &str, v: bool) {
        self.key(k);
        self.out.push_str(if v { "true" } else { "false" });
    }

    pub(crate) fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        self.out.push_str(&v.to_string());
    }

    pub(crate) fn value(&mut self, k: &str, v: &Value) {
        self.key(k);
        self.out.push_str(&v.to_string());
    }

    /// `k` followed by an already-serialized JSON value.
    pub(crate) fn raw(&mut self, k: &str, json: &str) {
        self.key(k);
        self.out.push_str(json);
    }

    pub(crate) fn object(&mut self, k: &str, fill: impl FnOnce(&mut ObjWriter<'_>)) {
        self.key(k);
        let mut inner = ObjWriter::new(self.out);
        fill(&mut inner);
        inner.finish();
    }

    pub(crate) fn finish(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json_with_escapes() {
        let mut s = String::new();
        let mut w = ObjWriter::new(&mut s);
        w.str(
            "a",
            "quote \" backslash \\ newline \n tab \t bell \u{7} ünï 😀",
        );
        w.null("b");
        w.bool("c", false);
        w.int("d", -5);
        w.object("e", |o| {
            o.opt_str("x", Some("y"));
            o.opt_str("z", None);
        });
        w.value("f", &serde_json::json!([1, "two"]));
        w.raw("g", "{}");
        w.finish();
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            v["a"],
            "quote \" backslash \\ newline \n tab \t bell \u{7} ünï 😀"
        );
        assert_eq!(v["e"]["x"], "y");
        assert!(v["e"]["z"].is_null());
        assert_eq!(v["f"][1], "two");
        assert_eq!(v["d"], -5);
    }
}
