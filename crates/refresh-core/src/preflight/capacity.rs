//! What the clone's size must fit: provisioned IOPS for its storage, and a Serverless v2
//! writer's capacity for the source's engine version.

use super::*;

/// Whether RDS takes these IOPS for the clone's storage: gp3 IOPS only from 400 GiB
/// (PostgreSQL), io1 0.5 to 50 per GiB, io2 0.5 to 1000 (RDS User Guide, "Amazon RDS DB
/// instance storage"). A size not known here is refused: the restore would be a guess.
pub(super) fn iops_fit(storage_type: &str, iops: u32, storage_gb: Option<i32>) -> Result<String, RefreshError> {
    let refuse = |why: String| Err(RefreshError::at("clone.iops", why));
    let Some(gb) = storage_gb else {
        return refuse(format!(
            "{iops} IOPS for {storage_type}: the source's storage size is not known, so whether RDS takes them cannot be checked"
        ));
    };
    let per_gb = f64::from(iops) / f64::from(gb);
    let fits = match storage_type {
        "gp3" => gb >= 400,
        "io1" => (0.5..=50.0).contains(&per_gb),
        "io2" => (0.5..=1000.0).contains(&per_gb),
        _ => false,
    };
    if fits {
        Ok(format!("{iops} IOPS on {gb} GiB of {storage_type}"))
    } else {
        let rule = match storage_type {
            "gp3" => "RDS provisions gp3 IOPS for PostgreSQL only from 400 GiB: leave clone.iops out for the baseline",
            "io1" => "io1 takes 0.5 to 50 IOPS per GiB",
            "io2" => "io2 takes 0.5 to 1000 IOPS per GiB",
            _ => "only io1, io2 and gp3 take IOPS",
        };
        refuse(format!("{iops} IOPS on {gb} GiB of {storage_type}: {rule}"))
    }
}

/// A `db.serverless` writer needs a scaling configuration on its cluster, or RDS refuses
/// it: the request's range, else the source cluster's.
pub(super) async fn serverless_capacity(
    rds: &Rds,
    request: &RefreshRequest,
) -> Result<ServerlessCapacity, RefreshError> {
    if let Some(capacity) = request.clone.serverless_capacity {
        return Ok(capacity);
    }
    if let Some(account) = &request.source.account {
        return Err(RefreshError::at(
            "clone.minCapacity",
            format!(
                "the source cluster is in account {account}, whose scaling configuration this stack does not read: \
                 set clone.minCapacity and clone.maxCapacity"
            ),
        ));
    }
    rds.serverless_capacity(&request.source.identifier).await?.ok_or_else(|| {
        RefreshError::at(
            "clone.minCapacity",
            format!(
                "the source cluster {:?} has no Serverless v2 scaling configuration to copy, and RDS refuses a \
                 db.serverless writer without one: set clone.minCapacity and clone.maxCapacity",
                request.source.identifier
            ),
        )
    })
}

/// The capacity checked against what the source's engine version supports, before a
/// cluster is restored and billed: `db.serverless` at all, a minimum of 0 (auto-pause) only
/// where the version pauses, a maximum of 256 ACUs only where it scales so far.
pub(super) async fn supported_capacity(
    rds: &Rds,
    source: &RestoreSource,
    capacity: ServerlessCapacity,
) -> Result<ServerlessCapacity, RefreshError> {
    let Some(version) = source.engine_version.as_deref() else { return Ok(capacity) };
    let range = rds.serverless_v2_range(&source.engine, version).await?;
    capacity_fits(capacity, range, &source.engine, version)
}

pub(super) fn capacity_fits(
    capacity: ServerlessCapacity,
    range: Option<ServerlessCapacity>,
    engine: &str,
    version: &str,
) -> Result<ServerlessCapacity, RefreshError> {
    let Some(range) = range else {
        return Err(RefreshError::at(
            "clone.instanceClass",
            format!(
                "{engine} {version} (the source's version, which the clone keeps) does not support Aurora Serverless \
                 v2: use a provisioned class such as \"db.r6g.large\""
            ),
        ));
    };
    if capacity.min_capacity < range.min_capacity {
        return Err(RefreshError::at(
            "clone.minCapacity",
            format!(
                "{} ACUs is below the {} ACUs {engine} {version} supports (a minimum of 0 pauses the clone, which \
                 needs a newer version)",
                capacity.min_capacity, range.min_capacity
            ),
        ));
    }
    if capacity.max_capacity > range.max_capacity {
        return Err(RefreshError::at(
            "clone.maxCapacity",
            format!(
                "{} ACUs is above the {} ACUs {engine} {version} supports",
                capacity.max_capacity, range.max_capacity
            ),
        ));
    }
    Ok(capacity)
}
