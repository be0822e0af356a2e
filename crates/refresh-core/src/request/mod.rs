//! The refresh request (the execution input): its fields (one table, which the validator
//! reads and the docs are generated from), its model, the JSON reader that reports every
//! problem with its path, the rules a request must follow, and the lenient labels of a
//! document that may be invalid.
//!
//! Validation walks the JSON itself rather than deriving `Deserialize`, so that every
//! problem is reported at once, each with its JSON path, and unknown fields are errors.

mod checks;
pub mod fields;
mod labels;
mod model;
mod reader;
mod rules;

pub(crate) use checks::{check_endpoint, check_secret_arn};
pub use checks::{check_rds_identifier, check_target, is_account_id};
pub use labels::Labels;
pub use model::*;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub use crate::error::{FieldError, ValidationErrors};

/// The largest request, as compact JSON. Every state of a run carries the request within
/// Step Functions' 256 KB, and EventBridge leaves the input out of the ended-run event past
/// about 248 KB of input and output; a real request is a few KB.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024;

impl RefreshRequest {
    /// Validates a request document, reporting every problem with its path.
    pub fn from_document(doc: &Value) -> Result<Self, ValidationErrors> {
        let mut reader = reader::Reader::default();
        let size = doc.to_string().len();
        if size > MAX_REQUEST_BYTES {
            reader.err("request", format!("is {size} bytes of JSON; at most {MAX_REQUEST_BYTES}"));
        }
        let request = reader.request(doc);
        match request {
            Some(r) if reader.errors.is_empty() => Ok(r),
            _ => Err(ValidationErrors(reader.errors)),
        }
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
