//! How a command fails: a message for standard error, and the exit code scripts read.

use refresh_core::RefreshError;

/// A failure and the exit code it maps to (the README's exit codes).
pub(crate) struct Failure(pub(crate) u8, pub(crate) String);

impl Failure {
    /// What was checked or run failed: an invalid request, a failed preflight, a failed run.
    const FAILED: u8 = 1;
    /// Wrong usage: a missing or malformed argument.
    const USAGE: u8 = 2;
    /// AWS or the DBLab Engine could not be reached, or refused.
    const UNREACHABLE: u8 = 3;

    pub(crate) fn failed(message: impl Into<String>) -> Self {
        Self(Self::FAILED, message.into())
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self(Self::USAGE, message.into())
    }

    pub(crate) fn unreachable(message: impl Into<String>) -> Self {
        Self(Self::UNREACHABLE, message.into())
    }
}

impl From<RefreshError> for Failure {
    fn from(e: RefreshError) -> Self {
        let code = if matches!(e, RefreshError::InvalidRequest(_)) { Self::FAILED } else { Self::UNREACHABLE };
        Failure(code, format!("{}: {e}", e.name()))
    }
}
