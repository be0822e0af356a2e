//! What can be read from a request document that may be invalid: for recording, naming
//! and notifying a run that was refused or failed. Each value only when it is well formed.

use std::time::Duration;

use serde_json::Value;

use super::checks::check_target;
use super::fields::{self, Field, Kind};
use crate::duration;

#[derive(Clone, Copy)]
pub struct Labels<'a>(&'a Value);

impl<'a> Labels<'a> {
    pub fn of(doc: &'a Value) -> Self {
        Self(doc)
    }

    fn text(&self, field: &Field) -> Option<&'a str> {
        let pointer: String = field.key.split('.').flat_map(|part| ["/", part]).collect();
        self.0.pointer(&pointer).and_then(Value::as_str)
    }

    /// The target, only when valid: it becomes a partition key (`"fleet#"` would land in
    /// the fleet's).
    pub fn target(&self) -> Option<&'a str> {
        self.text(&fields::TARGET).filter(|t| check_target(t).is_ok())
    }

    /// What a document that names no valid target asked for, as people read it (quoted,
    /// and cut short): for the row kept apart under `history::NO_TARGET`.
    pub fn invalid_target(&self) -> Option<String> {
        const LIMIT: usize = 80;
        let asked = self.0.get(fields::TARGET.key)?;
        if self.target().is_some() {
            return None;
        }
        Some(crate::text::shorten(&asked.to_string(), LIMIT))
    }

    pub fn source_type(&self) -> Option<&'a str> {
        self.text(&fields::SOURCE_TYPE)
    }

    pub fn source_identifier(&self) -> Option<&'a str> {
        self.text(&fields::SOURCE_IDENTIFIER)
    }

    pub fn clone_class(&self) -> Option<&'a str> {
        self.text(&fields::CLONE_INSTANCE_CLASS)
    }

    pub(crate) fn dblab_endpoint(&self) -> Option<&'a str> {
        self.text(&fields::DBLAB_API_ENDPOINT)
    }

    pub(crate) fn dblab_engine(&self) -> Option<&'a str> {
        self.text(&fields::DBLAB_ENGINE)
    }

    /// `freshness.maxAge` when it is a period within its bounds, whatever else is wrong.
    pub fn freshness_max_age(&self) -> Option<Duration> {
        let Kind::Period { least, most, .. } = fields::FRESHNESS_MAX_AGE.kind else { return None };
        let age = duration::parse(self.text(&fields::FRESHNESS_MAX_AGE)?).ok()?;
        (least..=most).contains(&age).then_some(age)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_invalid_documents() {
        let doc =
            json!({"target": "x", "source": 1, "freshness": {"maxAge": "36h"}, "dblab": {"apiEndpoint": "http://e"}});
        let labels = Labels::of(&doc);
        assert_eq!(labels.target(), Some("x"));
        assert_eq!(labels.source_type(), None);
        assert_eq!(labels.dblab_endpoint(), Some("http://e"));
        assert_eq!(labels.freshness_max_age(), Some(Duration::from_secs(36 * 3_600)));
        assert_eq!(Labels::of(&json!({"target": 1})).target(), None);
        assert_eq!(Labels::of(&json!({"target": "x"})).invalid_target(), None);
        assert_eq!(Labels::of(&json!({})).invalid_target(), None);
        let doc = json!({"source": {"type": "rds", "identifier": "prod"}, "freshness": {"maxAge": "10m"}});
        let labels = Labels::of(&doc);
        assert_eq!((labels.source_type(), labels.source_identifier()), (Some("rds"), Some("prod")));
        assert_eq!(labels.freshness_max_age(), None, "out of bounds");
    }

    #[test]
    fn an_invalid_target_is_never_a_key_and_is_said_as_asked() {
        for bad in
            [json!("fleet#"), json!("#no-target"), json!(""), json!({"a": 1}), json!("a b"), json!("t".repeat(64))]
        {
            let doc = json!({ "target": bad });
            assert_eq!(Labels::of(&doc).target(), None, "{bad}");
            assert!(Labels::of(&doc).invalid_target().is_some(), "{bad}");
        }
        let long = Labels::of(&json!({ "target": "x".repeat(300) })).invalid_target().unwrap();
        assert!(long.starts_with("\"xxx") && long.ends_with("...") && long.len() < 100, "{long}");
        assert_eq!(Labels::of(&json!({"target": 5})).invalid_target().as_deref(), Some("5"));
        assert_eq!(Labels::of(&json!({ "target": "t".repeat(63) })).target().map(str::len), Some(63));
    }
}
