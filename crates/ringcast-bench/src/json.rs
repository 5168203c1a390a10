//! A JSON writer for the report: a value tree with keys kept in insertion
//! order, printed on one line. Non-finite numbers print as `null`.

use std::fmt::Write as _;

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// An integer, printed exactly.
    Int(i128),
    /// A float, printed with up to 3 decimals (trailing zeros dropped).
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An empty object to [`Json::with`] keys onto.
    pub fn obj() -> Json {
        Json::Obj(Vec::new())
    }

    /// Adds `key` (an object only; panics otherwise, a programming error).
    pub fn with(mut self, key: &str, value: impl Into<Json>) -> Json {
        match &mut self {
            Json::Obj(fields) => fields.push((key.to_string(), value.into())),
            _ => panic!("Json::with on a non-object"),
        }
        self
    }

    /// The text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::Num(f) if !f.is_finite() => out.push_str("null"),
            Json::Num(f) => {
                let mut s = format!("{f:.3}");
                while s.ends_with('0') {
                    s.pop();
                }
                if s.ends_with('.') {
                    s.pop();
                }
                if s == "-0" {
                    s = "0".into();
                }
                out.push_str(&s);
            }
            Json::Str(s) => write_str(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}
impl From<u64> for Json {
    fn from(i: u64) -> Json {
        Json::Int(i.into())
    }
}
impl From<usize> for Json {
    fn from(i: usize) -> Json {
        Json::Int(i as i128)
    }
}
impl From<u32> for Json {
    fn from(i: u32) -> Json {
        Json::Int(i.into())
    }
}
impl From<f64> for Json {
    fn from(f: f64) -> Json {
        Json::Num(f)
    }
}
impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_string())
    }
}
impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}
impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(o: Option<T>) -> Json {
        o.map_or(Json::Null, Into::into)
    }
}
impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(v: Vec<T>) -> Json {
        Json::Arr(v.into_iter().map(Into::into).collect())
    }
}

/// Checks that `text` is one well-formed JSON value as far as nesting and
/// strings go: brackets balance and match outside strings, strings close,
/// and nothing follows the value. Returns the top-level object's keys.
#[cfg(test)]
pub fn check_shape(text: &str) -> Result<Vec<String>, String> {
    let mut stack = Vec::new();
    let mut in_str = false;
    let mut escaped = false;
    let mut keys = Vec::new();
    let mut current = String::new();
    let mut closed_at = None;
    for (i, c) in text.char_indices() {
        if closed_at.is_some() && !c.is_whitespace() {
            return Err(format!("text after the value at byte {i}"));
        }
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
                // A string that a ':' follows at depth 1 is a top-level key.
                if stack.len() == 1 && text[i + 1..].trim_start().starts_with(':') {
                    keys.push(std::mem::take(&mut current));
                }
                current.clear();
            } else {
                current.push(c);
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => stack.push(c),
            '}' | ']' => {
                let open = stack.pop().ok_or(format!("unbalanced {c} at byte {i}"))?;
                if (open, c) != ('{', '}') && (open, c) != ('[', ']') {
                    return Err(format!("{open} closed by {c} at byte {i}"));
                }
                if stack.is_empty() {
                    closed_at = Some(i);
                }
            }
            c if (c as u32) < 0x20 && !c.is_whitespace() => {
                return Err(format!("control character at byte {i}"))
            }
            _ => {}
        }
    }
    if in_str || !stack.is_empty() || closed_at.is_none() {
        return Err("unterminated value".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nested_values() {
        let j = Json::obj()
            .with("a", 1u64)
            .with("b", 2.5)
            .with("c", "x\"y\\z\n\u{1}")
            .with("d", None::<u64>)
            .with("e", vec![1.0, 2.125, f64::NAN])
            .with("f", Json::obj().with("g", true));
        assert_eq!(
            j.render(),
            r#"{"a":1,"b":2.5,"c":"x\"y\\z\n\u0001","d":null,"e":[1,2.125,null],"f":{"g":true}}"#
        );
        assert_eq!(Json::Num(-0.0001).render(), "0");
        assert_eq!(Json::Num(100.0).render(), "100");
    }

    #[test]
    fn the_shape_checker_finds_keys_and_faults() {
        let keys = check_shape(r#"{"a":{"x":"}{"},"b":[1,{"y":2}],"c":"\""}"#).unwrap();
        assert_eq!(keys, ["a", "b", "c"]);
        assert!(check_shape(r#"{"a":1"#).is_err());
        assert!(check_shape(r#"{"a":[1}"#).is_err());
        assert!(check_shape(r#"{"a":"x}"#).is_err());
        assert!(check_shape(r#"{}{}"#).is_err());
    }
}
