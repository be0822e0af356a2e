//! RDS and Aurora operations, one file a phase: `source` (read the source and its
//! restorable window, choose what to restore from), `snapshots` (listing and choosing
//! them), `shared` (another account's snapshots and clusters), `copy` (a shared encrypted
//! snapshot copied in first), `create` (the clone), `poll` (is it available) and `delete`
//! (only what this project made). `sdk` is the one place that tells an instance from a
//! cluster: every call above goes through it. The production source is only ever DESCRIBED; every mutating call
//! names a clone identifier, and deletion first proves the resource is ours
//! (`tags::check_managed`). `publish` is the publisher's, in production's own account: it
//! reads snapshots and changes only the copies it made (`publish::Held::is_our_copy`, by its publisher's name).

mod copy;
mod create;
mod delete;
mod poll;
pub mod publish;
mod sdk;
mod shared;
mod snapshots;
mod source;

pub use copy::CopyState;
pub(crate) use copy::needs_local_key;
pub use create::ClonePlan;
pub use delete::{DeleteGuard, DeleteStep, ManagedClone};
pub use poll::{LONGEST_CHECK, MOST_CALLS_PER_CHECK};
pub use shared::restorable;
pub(crate) use snapshots::newest_available;
pub use snapshots::{Candidate, data_time};

use aws_sdk_rds::Client;
use aws_sdk_rds::types::Tag;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::clock::rfc3339;
use crate::error::RefreshError;
use crate::naming;
use crate::poll::PollStatus;
use crate::request::{CloneSpec, SourceMode, SourceSpec, SourceType};
use crate::run::{CloneInstance, CloneKind, Endpoint, RestoreSource};
use crate::tags;

pub struct Rds {
    client: Client,
}

pub(super) fn tag_pairs(list: &[Tag]) -> Vec<(String, String)> {
    list.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

pub(super) fn sdk_tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

pub(super) fn has_code<E: ProvideErrorMetadata>(err: &E, codes: &[&str]) -> bool {
    err.code().is_some_and(|c| codes.contains(&c))
}

pub(super) fn opt_vec(v: &[String]) -> Option<Vec<String>> {
    if v.is_empty() { None } else { Some(v.to_vec()) }
}

impl Rds {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use aws_smithy_types::error::ErrorMetadata;

    use super::*;

    /// One of our names, and the tags an execution writes on what it makes.
    pub(in crate::rds) const NAME: &str = "dblab-refresh-staging-20261122-000000";

    pub(in crate::rds) fn tagged(execution: &str) -> Vec<(String, String)> {
        vec![
            (tags::MANAGED_BY_KEY.to_string(), tags::MANAGED_BY_VALUE.to_string()),
            (tags::EXECUTION_KEY.to_string(), execution.to_string()),
        ]
    }

    #[test]
    fn tags_go_to_rds_and_back_unchanged_and_an_empty_list_is_none() {
        let pairs = vec![("a".to_string(), "1".to_string()), ("b".to_string(), String::new())];
        assert_eq!(tag_pairs(&sdk_tags(&pairs)), pairs);
        assert_eq!(opt_vec(&[]), None);
        assert_eq!(opt_vec(&["sg-1".to_string()]), Some(vec!["sg-1".to_string()]));
        let err = ErrorMetadata::builder().code("DBInstanceNotFound").build();
        assert!(has_code(&err, &["Other", "DBInstanceNotFound"]) && !has_code(&err, &["Other"]));
        assert!(!has_code(&ErrorMetadata::builder().build(), &["DBInstanceNotFound"]), "no code");
    }
}
