//! The DynamoDB history table, the one door to it: one row per run (never overwritten by
//! another run), one lock item per target and per engine, and one fleet item per target.
//! The key scheme is here; `runs`, `locks` and `fleet` hold the operations.
//!
//! Table: partition key `target` (S), sort key `sk` (S).
//! - run rows: `sk = run#<started at, RFC 3339 UTC, millis>#<execution name>`: sorted by time;
//! - the lock: `sk = lock`, owned by one execution, with a `ttl` (epoch seconds) so that
//!   DynamoDB removes it even if nothing else does;
//! - the fleet: partition `fleet#`, sort key the target (`FLEET_PK`);
//! - a run's notification: partition `notification#<execution name>`, sort key
//!   `notification`, claimed before it is sent and holding its message id once it is, so
//!   that whichever machine sends it (the run's own, or the clean-up), it is sent once;
//! - when a run changed the engine's config: `sk = config#<execution name>`.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde_json::{Map, Number, Value};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::RefreshError;
use crate::row::RunSummary;
use crate::run::EngineLock;

mod fleet;
mod locks;
mod notifications;
mod posts;
mod runs;

pub use locks::lock_expiry;
pub use notifications::{CLAIM_OUTLIVES, Claim};
pub use posts::ConfigPost;

pub const PK: &str = "target";
pub const SK: &str = "sk";
pub const LOCK_SK: &str = "lock";
pub(crate) const RUN_PREFIX: &str = "run#";
pub const TTL_ATTRIBUTE: &str = "ttl";
/// Where the row of a request without a valid target goes: no target can be named so
/// (targets cannot contain `#`), so a target called "unknown" keeps its own history.
pub const NO_TARGET: &str = "#no-target";
/// The fleet's partition: targets cannot contain `#`, so it never meets a target's own rows.
pub const FLEET_PK: &str = "fleet#";

/// What a row write came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowWrite {
    Written,
    /// The row already held the run's outcome and was left as it was.
    AlreadyEnded,
}

/// The partition a run's row lives in.
pub fn partition_of(summary: &RunSummary) -> &str {
    summary.target.as_deref().unwrap_or(NO_TARGET)
}

pub struct History {
    client: Client,
    table: String,
}

/// The sort key of a run row. Fixed-width time first, so rows sort by start time.
pub fn run_key(started_at: OffsetDateTime, execution_name: &str) -> String {
    let utc = started_at.to_offset(time::UtcOffset::UTC);
    let stamp = utc
        .format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
        .unwrap_or_else(|_| utc.unix_timestamp().to_string());
    format!("{RUN_PREFIX}{stamp}#{execution_name}")
}

/// The partition key of an engine's lock by its API endpoint, normalised so that two
/// spellings of one address (case, default port, trailing slash) take the same lock: the
/// fallback for an engine that gives no `instanceID`. Targets cannot contain `#`, so this
/// never meets a target's rows.
pub(crate) fn engine_lock_key(api_endpoint: &str) -> Option<String> {
    crate::dblab::engines::normalized_address(api_endpoint).map(|address| format!("engine#{address}"))
}

/// The lock of the engine the preflight checked: keyed by its own `instanceID`, the same
/// on every address it answers on (a host name, an IP, an alias); by its normalised
/// address only when it gives none.
pub fn engine_lock(instance_id: Option<&str>, api_endpoint: &str) -> Option<EngineLock> {
    match instance_id.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => Some(EngineLock { key: format!("engine#id#{id}"), instance_id: Some(id.to_string()) }),
        None => engine_lock_key(api_endpoint).map(|key| EngineLock { key, instance_id: None }),
    }
}

pub(super) fn is_conditional_failure<E: ProvideErrorMetadata>(err: &E) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

impl History {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    /// The item at this key, read consistently (a lock, a run row, a fleet item).
    async fn item(
        &self,
        partition: &str,
        sort_key: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, RefreshError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(partition.into()))
            .key(SK, AttributeValue::S(sort_key.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| RefreshError::from_aws("GetItem", e))?;
        Ok(out.item)
    }

    /// Sets one text attribute of the item at this key (creating the item if it is not there).
    async fn set_text(
        &self,
        partition: &str,
        sort_key: &str,
        attribute: &str,
        value: &str,
    ) -> Result<(), RefreshError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(partition.into()))
            .key(SK, AttributeValue::S(sort_key.into()))
            .update_expression("SET #a = :v")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":v", AttributeValue::S(value.into()))
            .send()
            .await
            .map_err(|e| RefreshError::from_aws("UpdateItem", e))?;
        Ok(())
    }
}

/// One text attribute of an item.
fn text(item: &HashMap<String, AttributeValue>, attribute: &str) -> Option<String> {
    item.get(attribute).and_then(|v| v.as_s().ok()).cloned()
}

pub(crate) fn to_attribute(value: Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s),
        Value::Array(items) => AttributeValue::L(items.into_iter().map(to_attribute).collect()),
        Value::Object(map) => AttributeValue::M(map.into_iter().map(|(k, v)| (k, to_attribute(v))).collect()),
    }
}

pub(crate) fn from_attribute(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => n
            .parse::<i64>()
            .map(Value::from)
            .ok()
            .or_else(|| n.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number))
            .unwrap_or(Value::Null),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::L(items) => Value::Array(items.iter().map(from_attribute).collect()),
        AttributeValue::M(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), from_attribute(v))).collect::<Map<_, _>>())
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn a_row_without_a_valid_target_lives_apart() {
        let mut summary = crate::summary::running(
            &crate::run::RunState { request: json!({"target": "staging"}), ..Default::default() },
            datetime!(2026-11-22 05:00 UTC),
        );
        assert_eq!(partition_of(&summary), "staging");
        summary.target = None;
        assert_eq!(partition_of(&summary), NO_TARGET);
    }

    #[test]
    fn one_engine_has_one_lock_key_however_it_is_spelt() {
        let key = engine_lock_key("https://DBLab.Internal:443/").unwrap();
        assert_eq!(key, "engine#https://dblab.internal:443");
        assert_eq!(engine_lock_key("https://dblab.internal").unwrap(), key);
        assert_ne!(engine_lock_key("https://dblab.internal:2345").unwrap(), key);
        assert_eq!(engine_lock_key("http://10.0.0.5:2345/api/").unwrap(), "engine#http://10.0.0.5:2345/api");
        assert_eq!(engine_lock_key("not a url"), None);
    }

    #[test]
    fn an_engine_is_locked_by_its_own_identity_whatever_address_names_it() {
        let by_name = engine_lock(Some("abc123"), "https://dblab.internal:2345").unwrap();
        let by_ip = engine_lock(Some("abc123"), "https://10.0.0.5:2345").unwrap();
        assert_eq!(by_name, by_ip);
        assert_eq!(by_name.key, "engine#id#abc123");
        assert_eq!(by_name.describe(), "engine instance abc123");
        // Without an identity, the address: and the row says what that does not cover.
        let fallback = engine_lock(Some(" "), "https://DBLab.internal:2345/").unwrap();
        assert_eq!(
            (fallback.key.as_str(), fallback.instance_id.as_deref()),
            ("engine#https://dblab.internal:2345", None)
        );
        assert!(fallback.describe().contains("gives no instanceID"), "{}", fallback.describe());
        assert_eq!(engine_lock(None, "not a url"), None);
    }

    #[test]
    fn run_keys_sort_by_time() {
        let a = run_key(datetime!(2026-11-22 04:56:52.1 UTC), "zz");
        let b = run_key(datetime!(2026-11-22 04:56:52.12 UTC), "aa");
        let c = run_key(datetime!(2026-11-22 06:56:52 +2), "aa");
        assert_eq!(a, "run#2026-11-22T04:56:52.100Z#zz");
        assert!(a < b);
        assert_eq!(c, "run#2026-11-22T04:56:52.000Z#aa");
    }

    #[test]
    fn attributes_round_trip() {
        let v = json!({"s": "x", "n": 3, "f": 1.5, "b": true, "l": [1, "a"], "m": {"k": [false]}});
        let Value::Object(map) = v.clone() else { unreachable!() };
        let back: Map<String, Value> = map.into_iter().map(|(k, v)| (k, from_attribute(&to_attribute(v)))).collect();
        assert_eq!(Value::Object(back), v);
        assert_eq!(to_attribute(Value::Null), AttributeValue::Null(true));
    }

    #[test]
    fn attributes_json_cannot_hold_read_as_null() {
        assert_eq!(from_attribute(&AttributeValue::Null(true)), Value::Null);
        assert_eq!(from_attribute(&AttributeValue::Ss(vec!["a".into()])), Value::Null);
        assert_eq!(from_attribute(&AttributeValue::N("not a number".into())), Value::Null);
        assert_eq!(from_attribute(&AttributeValue::N("NaN".into())), Value::Null);
    }

    #[test]
    fn an_items_text_is_its_string_attribute_only() {
        let item = HashMap::from([
            ("owner".to_string(), AttributeValue::S("run-1".into())),
            ("ttl".to_string(), AttributeValue::N("1".into())),
        ]);
        assert_eq!(text(&item, "owner").as_deref(), Some("run-1"));
        assert_eq!(text(&item, "ttl"), None);
        assert_eq!(text(&item, "ownerArn"), None);
    }

    #[test]
    fn a_conditional_failure_is_told_by_its_code() {
        use aws_smithy_types::error::ErrorMetadata;
        let refused = ErrorMetadata::builder().code("ConditionalCheckFailedException").build();
        assert!(is_conditional_failure(&refused));
        assert!(!is_conditional_failure(&ErrorMetadata::builder().code("ValidationException").build()));
        assert!(!is_conditional_failure(&ErrorMetadata::default()));
    }
}
