//! A domain-free reader of a JSON document: typed fields at known keys, every problem
//! collected with its path, unknown keys reported with the nearest known one.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::duration;
use crate::error::FieldError;

#[derive(Default)]
pub(super) struct Reader {
    pub(super) errors: Vec<FieldError>,
}

/// One JSON object being read: its path, and the keys read so far (the rest are unknown).
pub(super) struct Obj<'a> {
    pub(super) path: String,
    pub(super) map: &'a Map<String, Value>,
    known: Vec<&'static str>,
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

impl Reader {
    pub(super) fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError { path: path.into(), message: message.into() });
    }

    /// Applies `rule` to a value that was read, reporting its complaint at `path`.
    pub(super) fn check(&mut self, path: &str, value: Option<&String>, rule: impl Fn(&str) -> Result<(), String>) {
        if let Some(v) = value
            && let Err(e) = rule(v)
        {
            self.err(path, e);
        }
    }

    pub(super) fn object<'a>(&mut self, value: &'a Value, path: &str) -> Option<Obj<'a>> {
        match value {
            Value::Object(map) => Some(Obj { path: path.to_string(), map, known: Vec::new() }),
            _ => {
                let at = if path.is_empty() { "request" } else { path };
                self.err(at, format!("must be a JSON object, not {}", kind_of(value)));
                None
            }
        }
    }

    /// Reports every key that was not read, and suggests the nearest known name.
    pub(super) fn finish(&mut self, obj: Obj<'_>) {
        for key in obj.map.keys() {
            if !obj.known.contains(&key.as_str()) {
                let hint = nearest(key, &obj.known).map(|k| format!("; did you mean {k:?}?")).unwrap_or_default();
                self.err(join(&obj.path, key), format!("is not a known field{hint}"));
            }
        }
    }

    pub(super) fn field<'a>(&mut self, obj: &mut Obj<'a>, key: &'static str) -> Option<&'a Value> {
        obj.known.push(key);
        obj.map.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn string(&mut self, obj: &mut Obj<'_>, key: &'static str, required: bool) -> Option<String> {
        let path = join(&obj.path, key);
        match self.field(obj, key) {
            None if required => {
                self.err(path, "is required");
                None
            }
            None => None,
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.err(path, "must not be empty");
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.err(path, format!("must be a string, not {}", kind_of(other)));
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, obj: &mut Obj<'_>, key: &'static str) -> bool {
        let path = join(&obj.path, key);
        match self.field(obj, key) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.err(path, format!("must be true or false, not {}", kind_of(other)));
                false
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        obj: &mut Obj<'_>,
        key: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let path = join(&obj.path, key);
        let Some(text) = self.string(obj, key, false) else { return default };
        match duration::parse(&text) {
            Ok(d) if d < min || d > max => {
                self.err(
                    path,
                    format!(
                        "{text:?} is out of range: between {} and {}",
                        duration::format(min),
                        duration::format(max)
                    ),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.err(path, e);
                default
            }
        }
    }
}

pub(super) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The known key closest to a misspelt one (case-insensitive edit distance of at most 2).
fn nearest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&key, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
