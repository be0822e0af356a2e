//! The refresh request (the execution input): its model, the domain-free JSON reader that
//! reports every problem with its path, and the rules a request must follow.
//!
//! Validation walks the JSON itself rather than deriving `Deserialize`, so that every
//! problem is reported at once, each with its JSON path, and unknown fields are errors.

mod checks;
mod model;
mod reader;
mod rules;

pub use checks::check_rds_identifier;
pub use model::*;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub use crate::error::{FieldError, ValidationErrors};

impl RefreshRequest {
    /// Validates a request document, reporting every problem with its path.
    pub fn from_document(doc: &Value) -> Result<Self, ValidationErrors> {
        let mut reader = reader::Reader::default();
        let request = reader.request(doc);
        match request {
            Some(r) if reader.errors.is_empty() => Ok(r),
            _ => Err(ValidationErrors(reader.errors)),
        }
    }

    /// The `target` of a document that may be invalid, for recording a failed run: only a
    /// valid target, since it becomes a partition key (`"fleet#"` would land in the fleet's).
    pub fn target_of(doc: &Value) -> Option<&str> {
        doc.get("target").and_then(Value::as_str).filter(|t| checks::check_target(t).is_ok())
    }

    /// What a document that names no valid target asked for, as people read it (quoted,
    /// and cut short): for the row kept apart under `history::NO_TARGET`.
    pub fn invalid_target_of(doc: &Value) -> Option<String> {
        const LIMIT: usize = 80;
        let asked = doc.get("target")?;
        if Self::target_of(doc).is_some() {
            return None;
        }
        Some(crate::stopped::shorten(&asked.to_string(), LIMIT))
    }
}

/// A handler's input holds a validated request: reading it runs the whole validation, so
/// no handler sees an invalid one. (The Lambda adapter reports a refusal as
/// `InvalidRequest` with every problem, not as a malformed input.)
impl<'de> Deserialize<'de> for RefreshRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let doc = Value::deserialize(d)?;
        Self::from_document(&doc).map_err(serde::de::Error::custom)
    }
}
