//! A reader of a JSON document that knows the request's fields only through their table
//! (`fields`): typed values at known keys, every problem collected with its path, unknown
//! keys reported with the nearest known one.

use std::time::Duration;

use serde_json::{Map, Value};

use super::fields::{Field, Kind};
use crate::duration;
use crate::error::FieldError;

#[derive(Default)]
pub(super) struct Reader {
    pub(super) errors: Vec<FieldError>,
    /// The keys of the table's fields read so far.
    pub(super) asked: Vec<&'static str>,
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

    /// The value of a field of the table, if given (null is not given).
    pub(super) fn value<'a>(&mut self, obj: &mut Obj<'a>, field: &'static Field) -> Option<&'a Value> {
        debug_assert_eq!(join(&obj.path, field.name()), field.key, "a field read in another object");
        self.asked.push(field.key);
        self.field(obj, field.name())
    }

    pub(super) fn text(&mut self, obj: &mut Obj<'_>, field: &'static Field) -> Option<String> {
        match self.value(obj, field) {
            None if field.required => {
                self.err(field.key, "is required");
                None
            }
            None => None,
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.err(field.key, "must not be empty");
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.err(field.key, format!("must be a string, not {}", kind_of(other)));
                None
            }
        }
    }

    /// One of the field's words (`Kind::Choice`).
    pub(super) fn choice(&mut self, obj: &mut Obj<'_>, field: &'static Field) -> Option<&'static str> {
        let Kind::Choice(words) = field.kind else { return None };
        let text = self.text(obj, field)?;
        let word = words.iter().find(|w| **w == text).copied();
        if word.is_none() {
            let names: Vec<_> = words.iter().map(|w| format!("{w:?}")).collect();
            self.err(field.key, format!("{text:?} is not supported; use one of {}", names.join(", ")));
        }
        word
    }

    pub(super) fn flag(&mut self, obj: &mut Obj<'_>, field: &'static Field) -> bool {
        match self.value(obj, field) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.err(field.key, format!("must be true or false, not {}", kind_of(other)));
                false
            }
        }
    }

    /// A whole number within the field's bounds (`Kind::Whole`).
    pub(super) fn whole(&mut self, obj: &mut Obj<'_>, field: &'static Field) -> Option<u64> {
        let Kind::Whole { least, most } = field.kind else { return None };
        let value = self.value(obj, field)?;
        let number = value.as_u64().filter(|n| (least..=most).contains(n));
        if number.is_none() {
            self.err(field.key, format!("must be a whole number from {least} to {most}"));
        }
        number
    }

    /// A period within the field's bounds, or its default.
    pub(super) fn period(&mut self, obj: &mut Obj<'_>, field: &'static Field) -> Duration {
        self.period_or(obj, field, field.default_period())
    }

    /// A period within the field's bounds, or `default` (when it is not given or invalid).
    pub(super) fn period_or(&mut self, obj: &mut Obj<'_>, field: &'static Field, default: Duration) -> Duration {
        let Kind::Period { least, most, .. } = field.kind else { return default };
        let Some(text) = self.text(obj, field) else { return default };
        match duration::parse(&text) {
            Ok(d) if d < least || d > most => {
                self.err(
                    field.key,
                    format!(
                        "{text:?} is out of range: between {} and {}",
                        duration::format(least),
                        duration::format(most)
                    ),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.err(field.key, e);
                default
            }
        }
    }

    /// A flag whose setting moved out of the request (`Kind::Moved`): `true` is refused,
    /// saying where it went.
    pub(super) fn moved(&mut self, obj: &mut Obj<'_>, field: &'static Field) {
        if let Kind::Moved(why) = &field.kind
            && self.flag(obj, field)
        {
            self.err(field.key, *why);
        }
    }

    /// A field that must not be given (`Kind::Refused`): says why when it is.
    pub(super) fn refused(&mut self, obj: &mut Obj<'_>, field: &'static Field) {
        if let (Some(_), Kind::Refused(why)) = (self.value(obj, field), &field.kind) {
            self.err(field.key, *why);
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fields;
    use super::*;

    fn read_identifier(value: Value) -> (Option<String>, Vec<FieldError>) {
        let doc = json!({ "identifier": value });
        let mut reader = Reader::default();
        let mut obj = reader.object(&doc, "source").unwrap();
        let text = reader.text(&mut obj, &fields::SOURCE_IDENTIFIER);
        (text, reader.errors)
    }

    fn error(message: &str) -> Vec<FieldError> {
        vec![FieldError { path: "source.identifier".into(), message: message.into() }]
    }

    #[test]
    fn a_text_field_is_a_string_that_is_not_blank() {
        assert_eq!(read_identifier(json!("prod")), (Some("prod".into()), vec![]));
        assert_eq!(read_identifier(json!("  ")), (None, error("must not be empty")));
        assert_eq!(read_identifier(json!(5)), (None, error("must be a string, not a number")));
        assert_eq!(read_identifier(Value::Null), (None, error("is required")), "null is not given");
    }

    #[test]
    fn the_edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("maxage", "maxagee"), 1);
        assert_eq!(edit_distance("ab", "ba"), 2);
    }

    #[test]
    fn an_unknown_key_is_told_the_nearest_known_one_within_two_edits() {
        let known = ["maxAge", "pollInterval", "restoreTimeout"];
        assert_eq!(nearest("maxage", &known), Some("maxAge"), "whatever the case");
        assert_eq!(nearest("pollIntervall", &known), Some("pollInterval"));
        assert_eq!(nearest("restorTimout", &known), Some("restoreTimeout"));
        assert_eq!(nearest("restoreTime", &known), None, "three edits away");
        let doc = json!({"colour": "blue", "maxage": "1h"});
        let mut reader = Reader::default();
        let mut obj = reader.object(&doc, "clone").unwrap();
        reader.field(&mut obj, "maxAge");
        reader.finish(obj);
        assert_eq!(
            reader.errors,
            vec![
                FieldError { path: "clone.colour".into(), message: "is not a known field".into() },
                FieldError {
                    path: "clone.maxage".into(),
                    message: "is not a known field; did you mean \"maxAge\"?".into()
                },
            ]
        );
    }

    #[test]
    fn a_json_value_is_named_by_its_kind() {
        for (value, kind) in [
            (Value::Null, "null"),
            (json!(true), "a boolean"),
            (json!(1.5), "a number"),
            (json!("x"), "a string"),
            (json!([1]), "a list"),
            (json!({}), "an object"),
        ] {
            assert_eq!(kind_of(&value), kind);
        }
    }
}
