//! The clone's rules: its class, storage, network, capacity and tags, as RDS takes them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::request::checks::*;
use crate::request::fields::{self as f, Kind};
use crate::request::model::*;
use crate::request::reader::{Obj, Reader, kind_of};
use crate::tags;

impl Reader {
    pub(super) fn clone_spec(&mut self, value: &Value, kind: Option<SourceType>) -> Option<CloneSpec> {
        let mut obj = self.object(value, "clone")?;
        let instance_class = self.text(&mut obj, &f::CLONE_INSTANCE_CLASS);
        self.check(f::CLONE_INSTANCE_CLASS.key, instance_class.as_ref(), |c| {
            if is_instance_class(c) {
                Ok(())
            } else {
                Err(format!("{c:?} is not an instance class such as \"db.r6g.large\""))
            }
        });
        let serverless_capacity = self.serverless_capacity(&mut obj, instance_class.as_deref(), kind);
        let subnet_group = self.text(&mut obj, &f::CLONE_SUBNET_GROUP);
        let security_groups = self.security_groups(&mut obj);
        let publicly_accessible = self.flag(&mut obj, &f::CLONE_PUBLICLY_ACCESSIBLE);
        let tags = self.tags(&mut obj);
        let parameter_group = self.text(&mut obj, &f::CLONE_PARAMETER_GROUP);
        let option_group = self.text(&mut obj, &f::CLONE_OPTION_GROUP);
        let cluster_parameter_group = self.text(&mut obj, &f::CLONE_CLUSTER_PARAMETER_GROUP);
        if cluster_parameter_group.is_some() && kind == Some(SourceType::Rds) {
            self.err(f::CLONE_CLUSTER_PARAMETER_GROUP.key, "applies only to source.type \"aurora-cluster\"");
        }
        let port = self.whole(&mut obj, &f::CLONE_PORT).and_then(|p| u16::try_from(p).ok());
        let storage_type = self.text(&mut obj, &f::CLONE_STORAGE_TYPE);
        if let (Some(st), Some(kind)) = (&storage_type, kind) {
            let allowed: &[&str] = match kind {
                SourceType::Rds => &["gp2", "gp3", "io1", "io2", "standard"],
                SourceType::AuroraCluster => &["aurora", "aurora-iopt1"],
            };
            if !allowed.contains(&st.as_str()) {
                self.err(
                    f::CLONE_STORAGE_TYPE.key,
                    format!("{st:?} is not valid for {}: use one of {allowed:?}", kind.as_str()),
                );
            }
        }
        let iops = self.iops(&mut obj, storage_type.as_deref(), kind);
        let enable_iam_auth = self.flag(&mut obj, &f::CLONE_ENABLE_IAM_AUTH);
        let deletion_protection = self.flag(&mut obj, &f::CLONE_DELETION_PROTECTION);
        let delete_after_dump = self.flag(&mut obj, &f::CLONE_DELETE_AFTER_DUMP);
        let max_age = self.period(&mut obj, &f::CLONE_MAX_AGE);
        let restore_timeout = self.period(&mut obj, &f::CLONE_RESTORE_TIMEOUT);
        let poll_interval = self.period(&mut obj, &f::CLONE_POLL_INTERVAL);
        let deletion_timeout = self.period(&mut obj, &f::CLONE_DELETION_TIMEOUT);
        self.finish(obj);
        Some(CloneSpec {
            deletion_timeout,
            instance_class: instance_class?,
            serverless_capacity,
            subnet_group,
            security_groups,
            publicly_accessible,
            tags,
            parameter_group,
            option_group,
            cluster_parameter_group,
            port,
            storage_type,
            iops,
            enable_iam_auth,
            deletion_protection,
            delete_after_dump,
            max_age,
            restore_timeout,
            poll_interval,
        })
    }

    /// RDS requires `Iops` with the provisioned storage types on a restore, takes it with
    /// gp3 only past a size threshold (the preflight checks the size), and takes none with
    /// the others (RDS API reference, RestoreDBInstanceFromDBSnapshot, Iops; RDS User Guide,
    /// "Amazon RDS DB instance storage").
    fn iops(&mut self, obj: &mut Obj<'_>, storage_type: Option<&str>, kind: Option<SourceType>) -> Option<u32> {
        let given = obj.map.get(f::CLONE_IOPS.name()).is_some_and(|v| !v.is_null());
        let iops = self.whole(obj, &f::CLONE_IOPS).and_then(|i| u32::try_from(i).ok());
        if kind != Some(SourceType::Rds) {
            if iops.is_some() && kind.is_some() {
                self.err(f::CLONE_IOPS.key, "applies only to source.type \"rds\": Aurora provisions its own I/O");
            }
            return None;
        }
        let (range, required) = match storage_type {
            Some("io1" | "io2") => (1000..=256_000, true),
            Some("gp3") => (12_000..=64_000, false),
            Some(other) => {
                if iops.is_some() {
                    self.err(
                        f::CLONE_IOPS.key,
                        format!("applies only to clone.storageType io1, io2 or gp3, not {other:?}"),
                    );
                }
                return None;
            }
            None => {
                if iops.is_some() {
                    self.err(f::CLONE_IOPS.key, "needs clone.storageType (io1, io2 or gp3) beside it");
                }
                return None;
            }
        };
        let st = storage_type.unwrap_or_default();
        match iops {
            None if !given && required => self.err(
                f::CLONE_IOPS.key,
                format!("is required with clone.storageType {st:?}: RDS refuses that type without it"),
            ),
            None => {}
            Some(i) if !range.contains(&i) => self.err(
                f::CLONE_IOPS.key,
                format!("{i} is outside {}-{} for clone.storageType {st:?}", range.start(), range.end()),
            ),
            Some(_) => {}
        }
        iops
    }

    /// `db.serverless` is an Aurora writer only; its capacity range (`minCapacity`,
    /// `maxCapacity`) is optional, within Aurora Serverless v2's limits.
    pub(super) fn serverless_capacity(
        &mut self,
        obj: &mut Obj<'_>,
        class: Option<&str>,
        kind: Option<SourceType>,
    ) -> Option<ServerlessCapacity> {
        let serverless = class == Some(SERVERLESS_CLASS);
        if serverless && kind == Some(SourceType::Rds) {
            self.err(
                f::CLONE_INSTANCE_CLASS.key,
                "\"db.serverless\" is an Aurora Serverless v2 writer: it needs source.type \"aurora-cluster\"; an RDS instance clone needs a provisioned class such as \"db.r6g.large\"",
            );
        }
        let min = self.acus(obj, &f::CLONE_MIN_CAPACITY);
        let max = self.acus(obj, &f::CLONE_MAX_CAPACITY);
        let capacity = match (min, max) {
            (None, None) => return None,
            // Already reported.
            (Some(None), _) | (_, Some(None)) => return None,
            (Some(Some(min_capacity)), Some(Some(max_capacity))) => ServerlessCapacity { min_capacity, max_capacity },
            (Some(_), None) | (None, Some(_)) => {
                self.err(f::CLONE_MAX_CAPACITY.key, "clone.minCapacity and clone.maxCapacity go together");
                return None;
            }
        };
        if !serverless {
            self.err(f::CLONE_MIN_CAPACITY.key, "applies only with clone.instanceClass \"db.serverless\"");
        }
        if capacity.min_capacity > capacity.max_capacity {
            self.err(
                f::CLONE_MIN_CAPACITY.key,
                format!("{} is above clone.maxCapacity ({})", capacity.min_capacity, capacity.max_capacity),
            );
        }
        Some(capacity)
    }

    /// Aurora capacity units: steps of 0.5, within the field's bounds. `Some(None)`: given
    /// but invalid (and reported).
    fn acus(&mut self, obj: &mut Obj<'_>, field: &'static f::Field) -> Option<Option<f64>> {
        let least = match field.kind {
            Kind::Acus { least } => least,
            _ => return None,
        };
        let value = self.value(obj, field)?;
        Some(match value.as_f64() {
            Some(n) if (least..=f::MOST_ACUS).contains(&n) && (n * 2.0).fract() == 0.0 => Some(n),
            _ => {
                self.err(
                    field.key,
                    format!("must be a number of ACUs from {least} to {}, in steps of 0.5", f::MOST_ACUS),
                );
                None
            }
        })
    }

    pub(super) fn security_groups(&mut self, obj: &mut Obj<'_>) -> Vec<String> {
        let Some(value) = self.value(obj, &f::CLONE_SECURITY_GROUPS) else { return Vec::new() };
        let Some(items) = value.as_array() else {
            self.err(
                f::CLONE_SECURITY_GROUPS.key,
                format!("must be a list of security group ids, not {}", kind_of(value)),
            );
            return Vec::new();
        };
        let mut groups = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(id) if id.starts_with("sg-") && id.len() > 3 => groups.push(id.to_string()),
                _ => self
                    .err(format!("clone.securityGroups[{i}]"), "must be a security group id such as \"sg-0123abcd\""),
            }
        }
        groups
    }

    pub(super) fn tags(&mut self, obj: &mut Obj<'_>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(value) = self.value(obj, &f::CLONE_TAGS) else { return out };
        let Some(map) = value.as_object() else {
            self.err(f::CLONE_TAGS.key, format!("must be an object of key/value strings, not {}", kind_of(value)));
            return out;
        };
        if map.len() > tags::MAX_USER_TAGS {
            self.err(
                f::CLONE_TAGS.key,
                format!("has {} tags; at most {} fit beside the orchestrator's own", map.len(), tags::MAX_USER_TAGS),
            );
        }
        for (key, value) in map {
            let path = format!("clone.tags.{key}");
            match value.as_str() {
                Some(v) => match tags::check_user_tag(key, v) {
                    Ok(()) => {
                        out.insert(key.clone(), v.to_string());
                    }
                    Err(e) => self.err(path, e),
                },
                None => self.err(path, format!("value must be a string, not {}", kind_of(value))),
            }
        }
        out
    }
}
