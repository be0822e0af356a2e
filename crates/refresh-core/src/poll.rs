//! What a check Task tells the Choice state after it: the clone's loop and the refresh's
//! loop route on the same words.

use serde::{Deserialize, Serialize};

/// What the Choice after a poll routes on. Shared by the clone and refresh loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollStatus {
    Pending,
    /// The clone is available, or the refresh finished.
    Ready,
    /// The clone's local snapshot copy is available: the restore may now be asked.
    Copied,
    Failed,
    TimedOut,
}
