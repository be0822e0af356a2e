//! Real PostgreSQL data: production servers behind emulated RDS sources, the engine's pool,
//! and what tests read from them (SQL, checksums, connections received).

use super::World;
use crate::*;
use dblab_emulator::Settings;
use serde_json::json;
use time::OffsetDateTime;

/// A production RDS instance backed by a real, seeded PostgreSQL server.
pub struct RealSource {
    pub id: String,
    /// The launcher's name for its server.
    pub server: String,
    /// Its server's port on 127.0.0.1.
    pub port: u16,
    /// Its automated snapshot(s), each a base backup: `(identifier, taken at)`.
    pub snapshots: Vec<(String, OffsetDateTime)>,
}

/// A table's row count and the md5 of its rows in order.
pub type Checksums = std::collections::BTreeMap<String, (u64, String)>;

impl World {
    /// A world whose engine refreshes on real data: real pg_dump from the source it is
    /// configured with, real pg_restore into a pool server of its own.
    pub async fn with_real_data(mut settings: Settings) -> Self {
        let pool = fixture(
            "postgres/pool",
            json!({"name": unique("pool"), "username": "dblab_pool", "password": "pool-secret"}),
        )
        .await;
        let text = |k: &str| pool[k].as_str().unwrap_or_default().to_string();
        settings.data = Some(dblab_emulator::RealData {
            bin_dir: text("binDir"),
            pool: dblab_emulator::Pool {
                host: text("host"),
                port: pool["port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or_default(),
                username: "dblab_pool".into(),
                password: "pool-secret".into(),
            },
        });
        let mut w = Self::build(settings, "us-east-1").await;
        w.pool = Some(text("server"));
        w
    }

    /// The pool's server name (a world made by `with_real_data`).
    pub fn pool(&self) -> &str {
        self.pool.as_deref().unwrap_or_else(|| panic!("this world's engine has no real pool"))
    }

    /// A production RDS instance on a real server, seeded (database `app`, readable by the
    /// request's user with this world's password); its automated snapshot holds that data.
    pub async fn real_rds_source(&self) -> RealSource {
        let id = self.rds_source().await;
        self.back_with_postgres(None, "instance", id).await
    }

    /// An Aurora cluster on a real server, as `real_rds_source`.
    pub async fn real_aurora_source(&self) -> RealSource {
        let id = self.aurora_source().await;
        self.back_with_postgres(None, "cluster", id).await
    }

    /// Backs an instance or cluster (`kind`) of this account, or of `account`, with a real
    /// server, seeded as `real_rds_source` says.
    pub async fn back_with_postgres(&self, account: Option<&str>, kind: &str, id: String) -> RealSource {
        let mut body = json!({
            kind: id, "masterUsername": "admin", "masterPassword": "production-password",
            "database": "app", "reader": "dblab", "readerPassword": self.password,
        });
        if let Some(account) = account {
            body["account"] = json!(account);
        }
        let out = fixture("postgres/source", body).await;
        let snapshots = out["snapshots"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let at = s["createdAt"].as_str().unwrap_or_default();
                let at = OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|e| panic!("snapshot time {at}: {e}"));
                (s["snapshot"].as_str().unwrap_or_default().to_string(), at)
            })
            .collect();
        RealSource {
            id,
            server: out["server"].as_str().unwrap_or_default().to_string(),
            port: out["port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or_default(),
            snapshots,
        }
    }

    /// Runs SQL on one of the launcher's servers, as its superuser.
    pub async fn sql(&self, server: &str, database: &str, sql: &str) -> String {
        let out = fixture("postgres/sql", json!({"server": server, "database": database, "sql": sql})).await;
        out["output"].as_str().unwrap_or_default().trim().to_string()
    }

    pub async fn checksums(&self, server: &str, database: &str) -> Checksums {
        let out = fixture("postgres/checksums", json!({"server": server, "database": database})).await;
        out["tables"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(table, sum)| {
                (
                    table.clone(),
                    (sum["rows"].as_u64().unwrap_or_default(), sum["md5"].as_str().unwrap_or_default().into()),
                )
            })
            .collect()
    }

    /// The connections a server received between two times, as its log lines.
    pub async fn connections(&self, server: &str, since: OffsetDateTime, until: OffsetDateTime) -> Vec<String> {
        let fmt = &time::format_description::well_known::Rfc3339;
        let out = fixture(
            "postgres/connections",
            json!({"server": server, "since": since.format(fmt).unwrap_or_default(), "until": until.format(fmt).unwrap_or_default()}),
        )
        .await;
        out["lines"].as_array().into_iter().flatten().filter_map(|l| l.as_str().map(str::to_string)).collect()
    }

    /// The launcher's running PostgreSQL servers.
    pub async fn pg_servers(&self) -> Vec<String> {
        let out = fixture("postgres/servers", json!({})).await;
        out["servers"].as_array().into_iter().flatten().filter_map(|l| l.as_str().map(str::to_string)).collect()
    }
}
