//! Stored target state per pair (`target_state`, `target_accounts`, `target_groups`): the last
//! known accounts, groups and memberships of a target, written whole by a full read
//! ([`Store::replace_target_state`]) and patched row by row ([`Store::patch_target_state`]).
//! A cache of the target, never the record of what is managed (that is the link table): the
//! runner marks it not clean before an apply and clean only after one that finished cleanly,
//! so a killed or failed apply makes the next run a full reconcile.
//!
//! Whole reads and writes go through one JSON value (`json_group_array` / `json_each`): the
//! driver's per-row cost would otherwise dominate at 50,000 accounts.

use crate::{Store, StoreError};
use serde_json::{Value, json};
use sqlx::Row as _;
use std::collections::BTreeSet;
use usersync_core::model::{TargetAccount, TargetGroup, TargetSnapshot, name_key};
use usersync_core::target_state::{StoredMeta, TargetStateChanges, account_ident};

type AccountRow = (String, Option<String>, String, String, i64, Vec<String>);

fn account_json(id: &str, a: &TargetAccount) -> Value {
    json!([
        id,
        a.username,
        a.key,
        a.display_name,
        a.email,
        a.active,
        a.groups
    ])
}

const INSERT_ACCOUNTS: &str = "INSERT INTO target_accounts
       (pair, ident, username, target_key, display_name, email, active, groups)
     SELECT $1, value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
            CASE WHEN value ->> 5 THEN 1 ELSE 0 END, json(value -> 6)
     FROM json_each($2)
     WHERE true
     ON CONFLICT (pair, ident) DO UPDATE SET username = excluded.username,
        target_key = excluded.target_key, display_name = excluded.display_name,
        email = excluded.email, active = excluded.active, groups = excluded.groups";

const INSERT_GROUPS: &str = "INSERT INTO target_groups (pair, name_key, name)
     SELECT $1, value ->> 0, value ->> 1 FROM json_each($2)
     WHERE true
     ON CONFLICT (pair, name_key) DO UPDATE SET name = excluded.name";

impl Store {
    /// The bookkeeping of a pair's stored target state (cheap: no accounts are read).
    pub async fn target_state_meta(&self, pair: &str) -> Result<Option<StoredMeta>, StoreError> {
        let row = sqlx::query(
            "SELECT full_read_ms, fingerprint, clean FROM target_state WHERE pair = $1",
        )
        .bind(pair)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::db("reading the stored target state"))?;
        row.map(|r| {
            Ok(StoredMeta {
                full_read_ms: r.try_get(0)?,
                fingerprint: r.try_get(1)?,
                clean: r.try_get::<i64, _>(2)? != 0,
            })
        })
        .transpose()
        .map_err(StoreError::db("reading the stored target state"))
    }

    /// A pair's stored target state, if there is one.
    pub async fn target_state(
        &self,
        pair: &str,
    ) -> Result<Option<(StoredMeta, TargetSnapshot)>, StoreError> {
        let Some(meta) = self.target_state_meta(pair).await? else {
            return Ok(None);
        };
        let ctx = "reading the stored target state";
        let accounts: Option<String> = sqlx::query(
            "SELECT json_group_array(json_array(username, target_key, display_name, email,
                                                active, json(groups)))
             FROM target_accounts WHERE pair = $1",
        )
        .bind(pair)
        .fetch_one(&self.pool)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(StoreError::db(ctx))?;
        let rows: Vec<AccountRow> = serde_json::from_str(accounts.as_deref().unwrap_or("[]"))
            .map_err(|e| StoreError::corrupt(format!("stored target state of {pair:?}"), e))?;
        let groups: Vec<String> = sqlx::query("SELECT name FROM target_groups WHERE pair = $1")
            .bind(pair)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db(ctx))?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()
            .map_err(StoreError::db(ctx))?;
        let snapshot = TargetSnapshot {
            accounts: rows
                .into_iter()
                .map(
                    |(username, key, display_name, email, active, groups)| TargetAccount {
                        username,
                        key,
                        display_name,
                        email,
                        active: active != 0,
                        groups: groups.into_iter().collect::<BTreeSet<_>>(),
                    },
                )
                .collect(),
            groups: groups
                .into_iter()
                .map(|name| TargetGroup { name })
                .collect(),
        };
        Ok(Some((meta, snapshot)))
    }

    /// Replaces a pair's stored target state with a full read, in one transaction.
    pub async fn replace_target_state(
        &self,
        pair: &str,
        snapshot: &TargetSnapshot,
        meta: &StoredMeta,
    ) -> Result<(), StoreError> {
        let ctx = "saving the stored target state";
        let accounts = Value::Array(
            snapshot
                .accounts
                .iter()
                .map(|a| account_json(&account_ident(a), a))
                .collect(),
        )
        .to_string();
        let groups = Value::Array(
            snapshot
                .groups
                .iter()
                .map(|g| json!([name_key(&g.name), g.name]))
                .collect(),
        )
        .to_string();
        let mut w = self.write_tx(ctx).await?;
        for sql in [
            "DELETE FROM target_accounts WHERE pair = $1",
            "DELETE FROM target_groups WHERE pair = $1",
        ] {
            sqlx::query(sql)
                .bind(pair)
                .execute(&mut *w.tx)
                .await
                .map_err(StoreError::db(ctx))?;
        }
        sqlx::query(INSERT_ACCOUNTS)
            .bind(pair)
            .bind(accounts)
            .execute(&mut *w.tx)
            .await
            .map_err(StoreError::db(ctx))?;
        sqlx::query(INSERT_GROUPS)
            .bind(pair)
            .bind(groups)
            .execute(&mut *w.tx)
            .await
            .map_err(StoreError::db(ctx))?;
        upsert_meta(&mut w.tx, pair, meta).await?;
        w.tx.commit().await.map_err(StoreError::db(ctx))?;
        Ok(())
    }

    /// Writes the rows a run changed (fresh reads, applied operations), in one transaction.
    /// Does nothing when the pair has no stored state (a full read writes it whole).
    pub async fn patch_target_state(
        &self,
        pair: &str,
        changes: &TargetStateChanges,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let ctx = "patching the stored target state";
        let upserts = Value::Array(
            changes
                .upsert_accounts
                .iter()
                .map(|(id, a)| account_json(id, a))
                .collect(),
        )
        .to_string();
        let groups = Value::Array(
            changes
                .upsert_groups
                .iter()
                .map(|g| json!([name_key(&g.name), g.name]))
                .collect(),
        )
        .to_string();
        let mut w = self.write_tx(ctx).await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM target_state WHERE pair = $1")
            .bind(pair)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(StoreError::db(ctx))?;
        if exists.is_none() {
            return Ok(());
        }
        sqlx::query(
            "DELETE FROM target_accounts WHERE pair = $1 AND ident IN (SELECT value FROM json_each($2))",
        )
        .bind(pair)
        .bind(Value::from(changes.remove_accounts.clone()).to_string())
        .execute(&mut *w.tx)
        .await
        .map_err(StoreError::db(ctx))?;
        // A name now held by another identity replaces the stale row (usernames are unique in
        // the products, case-insensitively).
        // By the (pair, lower(username)) index: a scan of every row per upsert made a 500-user
        // change at 50,000 accounts take 73 s.
        sqlx::query(
            "DELETE FROM target_accounts WHERE pair = $1
               AND lower(username) IN (SELECT lower(j.value ->> 1) FROM json_each($2) j)
               AND ident NOT IN (SELECT j.value ->> 0 FROM json_each($2) j)",
        )
        .bind(pair)
        .bind(&upserts)
        .execute(&mut *w.tx)
        .await
        .map_err(StoreError::db(ctx))?;
        sqlx::query(INSERT_ACCOUNTS)
            .bind(pair)
            .bind(&upserts)
            .execute(&mut *w.tx)
            .await
            .map_err(StoreError::db(ctx))?;
        sqlx::query(
            "DELETE FROM target_groups WHERE pair = $1 AND name_key IN (SELECT value FROM json_each($2))",
        )
        .bind(pair)
        .bind(Value::from(changes.remove_groups.clone()).to_string())
        .execute(&mut *w.tx)
        .await
        .map_err(StoreError::db(ctx))?;
        sqlx::query(INSERT_GROUPS)
            .bind(pair)
            .bind(groups)
            .execute(&mut *w.tx)
            .await
            .map_err(StoreError::db(ctx))?;
        w.tx.commit().await.map_err(StoreError::db(ctx))?;
        Ok(())
    }

    /// Marks a pair's stored state clean (an apply finished cleanly) or not (an apply is about
    /// to start, or did not finish cleanly): a state that is not clean forces a full read.
    pub async fn set_target_state_clean(&self, pair: &str, clean: bool) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query("UPDATE target_state SET clean = $2 WHERE pair = $1")
            .bind(pair)
            .bind(i64::from(clean))
            .execute(&self.pool)
            .await
            .map_err(StoreError::db("marking the stored target state"))?;
        Ok(())
    }

    /// Forgets a pair's stored target state (the next run reads the target in full).
    pub async fn clear_target_state(&self, pair: &str) -> Result<(), StoreError> {
        let ctx = "clearing the stored target state";
        let mut w = self.write_tx(ctx).await?;
        for sql in [
            "DELETE FROM target_accounts WHERE pair = $1",
            "DELETE FROM target_groups WHERE pair = $1",
            "DELETE FROM target_state WHERE pair = $1",
        ] {
            sqlx::query(sql)
                .bind(pair)
                .execute(&mut *w.tx)
                .await
                .map_err(StoreError::db(ctx))?;
        }
        w.tx.commit().await.map_err(StoreError::db(ctx))?;
        Ok(())
    }
}

async fn upsert_meta(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    pair: &str,
    meta: &StoredMeta,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO target_state (pair, full_read_ms, fingerprint, clean) VALUES ($1, $2, $3, $4)
         ON CONFLICT (pair) DO UPDATE SET full_read_ms = excluded.full_read_ms,
            fingerprint = excluded.fingerprint, clean = excluded.clean",
    )
    .bind(pair)
    .bind(meta.full_read_ms)
    .bind(&meta.fingerprint)
    .bind(i64::from(meta.clean))
    .execute(&mut **tx)
    .await
    .map_err(StoreError::db("saving the stored target state"))?;
    Ok(())
}
