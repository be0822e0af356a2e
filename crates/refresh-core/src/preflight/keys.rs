//! The encryption keys a restore uses: the source's, which the stack must let it use, and
//! this account's key for what is taken encrypted from another account.

use super::*;

/// Who manages a KMS key, as DescribeKey says; the reason when it cannot say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeyManager {
    /// An AWS managed key (`aws/rds`): RDS uses it for any principal of the account, with
    /// no grant from the caller.
    Aws,
    Customer,
    Unknown(String),
}

/// Who manages `key`.
pub(super) async fn key_manager(kms: &aws_sdk_kms::Client, key: &str) -> KeyManager {
    match kms.describe_key().key_id(key).send().await {
        Ok(out) => match out.key_metadata().and_then(|m| m.key_manager()) {
            Some(aws_sdk_kms::types::KeyManagerType::Aws) => KeyManager::Aws,
            Some(_) => KeyManager::Customer,
            None => KeyManager::Unknown("DescribeKey gave no KeyManager".into()),
        },
        Err(e) => KeyManager::Unknown(RefreshError::from_aws("DescribeKey", e).to_string()),
    }
}

/// Whether the restore can use the source's key. An AWS managed key needs nothing; a
/// customer-managed key needs `kms:CreateGrant`, which the stack grants only on the keys
/// its `SourceKmsKeyArns` lists: any other would fail the restore after the run started.
pub(super) async fn encryption_allowed(
    kms: &aws_sdk_kms::Client,
    source: &RestoreSource,
    allowed: Option<&[String]>,
    production_account: Option<&str>,
) -> Result<String, RefreshError> {
    let Some(key) = &source.kms_key_id else {
        return Ok(if source.encrypted {
            "encrypted with a key its listing does not name (a cluster shared through AWS RAM): production's key \
             policy must let this account use that key and SourceKmsKeyArns must list it, which cannot be checked \
             from here; the clone is made under this account's key"
                .into()
        } else {
            "not encrypted".into()
        });
    };
    // Another account's key: usable from here only if its policy lets this account use it,
    // which only asking it shows (a listed key is not thereby shared).
    if let Some(account) = production_account {
        return match key_manager(kms, key).await {
            KeyManager::Unknown(reason) => Err(RefreshError::at(
                "source.account",
                format!(
                    "the shared snapshot is encrypted with {key}, which this account cannot use ({reason}): account \
                     {account}'s key policy must allow this account kms:DescribeKey and kms:CreateGrant"
                ),
            )),
            manager => key_verdict(source, key, allowed, Some(manager).filter(|m| *m == KeyManager::Aws)).map(|said| {
                format!("{said}; account {account}'s key policy lets this account use it (DescribeKey answered)")
            }),
        };
    }
    if allowed.is_some_and(|allowed| listed(key, allowed)) {
        return key_verdict(source, key, allowed, None);
    }
    key_verdict(source, key, allowed, Some(key_manager(kms, key).await))
}

/// This account's key for what is taken encrypted from another account: the stack must
/// name one (CopyDBSnapshot requires a `KmsKeyId` for such a copy; RDS makes no
/// unencrypted clone of an encrypted shared cluster), and this account must be able to use
/// it (DescribeKey answers).
pub(super) async fn local_key_usable(
    kms: &aws_sdk_kms::Client,
    source: &RestoreSource,
    key: Option<&str>,
) -> Result<String, RefreshError> {
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return Err(RefreshError::at(
            "source.account",
            format!(
                "{} is encrypted and shared from another account: RDS restores it only from a copy in this account \
                 (a shared cluster: only as a clone) made under a KMS key of this account, and the stack's \
                 CopyKmsKeyArn parameter names none: set it \
                 (docs/deploying.md, \"Production in another account\") and update the stack (dblab-refresh \
                 validate: --copy-kms-key)",
                source.describe()
            ),
        ));
    };
    match key_manager(kms, key).await {
        KeyManager::Unknown(reason) => Err(RefreshError::at(
            "source.account",
            format!("the stack's CopyKmsKeyArn {key} cannot be used by this account ({reason})"),
        )),
        _ => Ok(key.to_string()),
    }
}

/// A key is named by its ARN; a listed entry may also be its bare id.
pub(super) fn listed(key: &str, allowed: &[String]) -> bool {
    let key_id = key.rsplit('/').next().unwrap_or(key);
    allowed.iter().any(|a| a == key || a.rsplit('/').next() == Some(key_id))
}

/// The rule, once the key's manager is known (`None`: not asked, the key being listed).
pub(super) fn key_verdict(
    source: &RestoreSource,
    key: &str,
    allowed: Option<&[String]>,
    manager: Option<KeyManager>,
) -> Result<String, RefreshError> {
    let why = match manager {
        Some(KeyManager::Aws) => {
            return Ok(format!(
                "encrypted with {key}, an AWS managed key: RDS uses it for this account, no grant needed"
            ));
        }
        None if allowed.is_some_and(|a| listed(key, a)) => {
            return Ok(format!("encrypted with {key}, which the stack allows"));
        }
        None | Some(KeyManager::Customer) => "a customer-managed key".to_string(),
        Some(KeyManager::Unknown(reason)) => format!("a key whose manager could not be read ({reason})"),
    };
    let Some(_) = allowed else {
        return Ok(format!("encrypted with {key}, {why}; not checked against the stack's SourceKmsKeyArns here"));
    };
    Err(RefreshError::at(
        "source",
        format!(
            "{} is encrypted with the KMS key {key}, {why} that the stack's SourceKmsKeyArns parameter does not \
             list, so the restore could not use it: add the key's ARN to SourceKmsKeyArns and update the stack",
            source.describe()
        ),
    ))
}
