//! PostgreSQL's side of the migrations: applying the list on the server.

use super::classify;
use crate::migrations::{Migration, validate};
use crate::{EngineError, Error, Result};

/// The version recorded in the database; 0 when never migrated.
pub(super) async fn version_of(client: &tokio_postgres::Client) -> Result<u32> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await
        .map_err(classify)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let version: i32 = client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await
        .map_err(classify)?
        .get(0);
    Ok(u32::try_from(version).unwrap_or(0))
}

/// Applies every migration newer than the database's version, each in its
/// own transaction. The caller holds the migration lock.
pub(super) async fn apply(
    client: &tokio_postgres::Client,
    list: &[Migration],
    now: i64,
) -> Result<u32> {
    validate(list)?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version INTEGER PRIMARY KEY,
                 applied_at BIGINT NOT NULL
             )",
        )
        .await
        .map_err(classify)?;
    let current = version_of(client).await?;
    for m in list.iter().filter(|m| m.version > current) {
        client.batch_execute("BEGIN").await.map_err(classify)?;
        let step = async {
            client
                .batch_execute(m.sql)
                .await
                .map_err(|source| Error::Migration {
                    version: m.version,
                    source: EngineError::new(source),
                })?;
            let version = i32::try_from(m.version).unwrap_or(i32::MAX);
            client
                .execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                    &[&version, &now],
                )
                .await
                .map_err(classify)?;
            client.batch_execute("COMMIT").await.map_err(classify)
        };
        if let Err(e) = step.await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    }
    version_of(client).await
}
