//! [`StoreJournal`]: the engine's [`ApplyJournal`] backed by the store. Each call is one short
//! transaction that (1) loads the links the operation touches (those under its `source_id`,
//! plus every group link for a group adoption, which may take over another group's link),
//! (2) applies the engine's own link rules ([`usersync_core::journal::record_intent`] /
//! [`usersync_core::journal::apply_outcome_to_links`], the ones `MemoryJournal` uses) to that
//! slice, (3) writes back the difference and (4) records the operation's progress in
//! its rows in `run_items`, then commits before returning.

use crate::{Store, StoreError, group_link_from_row, user_link_from_row};
use async_trait::async_trait;
use sqlx::SqliteConnection;
use usersync_core::journal::{apply_outcome_to_links, record_intent};
use usersync_core::link::LinkTable;
use usersync_core::plan::{OpKind, OpOutcome, Operation};
use usersync_core::ports::{ApplyJournal, JournalError};

/// The store's [`ApplyJournal`] for one apply of one pair. Create it with
/// [`Store::journal`].
#[derive(Debug, Clone)]
pub struct StoreJournal {
    store: Store,
    pair: String,
    run_id: i64,
    now_ms: i64,
}

impl StoreJournal {
    pub(crate) fn new(store: Store, pair: String, run_id: i64, now_ms: i64) -> Self {
        Self {
            store,
            pair,
            run_id,
            now_ms,
        }
    }

    /// Records the intent of `op` (pending links) and marks it started in the run.
    pub async fn record_before(&self, op: &Operation) -> Result<(), StoreError> {
        let mut w = self
            .store
            .write_tx("recording an operation's intent")
            .await?;
        let conn: &mut SqliteConnection = &mut w.tx;
        let before = load_slice(conn, &self.pair, op).await?;
        let mut after = before.clone();
        record_intent(&mut after, op);
        write_diff(conn, &self.pair, &before, &after).await?;
        crate::runs::record_op(conn, self.run_id, op, None).await?;
        w.tx.commit()
            .await
            .map_err(StoreError::db("committing an operation's intent"))?;
        Ok(())
    }

    /// Applies the outcome of `op` to the links and records it in the run.
    pub async fn record_after(
        &self,
        op: &Operation,
        outcome: &OpOutcome,
    ) -> Result<(), StoreError> {
        let mut w = self
            .store
            .write_tx("recording an operation's outcome")
            .await?;
        let conn: &mut SqliteConnection = &mut w.tx;
        let before = load_slice(conn, &self.pair, op).await?;
        let mut after = before.clone();
        apply_outcome_to_links(&mut after, op, outcome, self.now_ms);
        write_diff(conn, &self.pair, &before, &after).await?;
        crate::runs::record_op(conn, self.run_id, op, Some(outcome)).await?;
        w.tx.commit()
            .await
            .map_err(StoreError::db("committing an operation's outcome"))?;
        Ok(())
    }
}

pub(crate) fn run_op_err(run_id: i64) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| {
        let fk = e
            .as_database_error()
            .is_some_and(|d| d.is_foreign_key_violation());
        if fk {
            StoreError::NotFound {
                what: format!("run {run_id} (start it with Store::start_run before journaling)"),
            }
        } else {
            StoreError::db("recording an operation in its run")(e)
        }
    }
}

fn to_journal_error(e: StoreError) -> JournalError {
    JournalError::new(format!("state store: {e}"))
}

#[async_trait]
impl ApplyJournal for StoreJournal {
    async fn before(&self, op: &Operation) -> Result<(), JournalError> {
        self.record_before(op).await.map_err(to_journal_error)
    }

    async fn after(&self, op: &Operation, outcome: &OpOutcome) -> Result<(), JournalError> {
        self.record_after(op, outcome)
            .await
            .map_err(to_journal_error)
    }

    async fn links(&self) -> Result<LinkTable, JournalError> {
        self.store.links(&self.pair).await.map_err(to_journal_error)
    }
}

/// The source object ID an operation is about, if any: every link-changing operation carries
/// one (`source_id`). Read from the serialised form so new operation kinds are covered
/// without changes here.
fn op_source_id(op: &Operation) -> Option<String> {
    match serde_json::to_value(&op.kind) {
        Ok(serde_json::Value::Object(map)) => map
            .get("source_id")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        _ => None,
    }
}

/// Loads the links `op` can touch (the user and the group link under its source ID) as a
/// small table. Entra object IDs are unique across users and groups.
async fn load_slice(
    conn: &mut SqliteConnection,
    pair: &str,
    op: &Operation,
) -> Result<LinkTable, StoreError> {
    let mut slice = LinkTable::default();
    let Some(id) = op_source_id(op) else {
        return Ok(slice);
    };
    let row = sqlx::query(
        "SELECT source_id, username, target_key, pending_username, deactivated_at_ms, photo_tag
         FROM user_links WHERE pair = $1 AND source_id = $2",
    )
    .bind(pair)
    .bind(&id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::db("reading a link"))?;
    if let Some(r) = row {
        let link = user_link_from_row(&r)?;
        slice.users.insert(link.source_id.clone(), link);
    }
    let row = sqlx::query(
        "SELECT source_id, name, pending FROM group_links WHERE pair = $1 AND source_id = $2",
    )
    .bind(pair)
    .bind(&id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::db("reading a link"))?;
    if let Some(r) = row {
        let link = group_link_from_row(&r)?;
        slice.groups.insert(link.source_id.clone(), link);
    }
    if matches!(op.kind, OpKind::AdoptGroup { .. }) {
        // A takeover drops the departed source group's link to the same target group, which
        // lives under another source ID: load the pair's group links (a small table) so the
        // rule sees it. Names compare by `name_key` (Unicode), not SQLite's ASCII `lower()`.
        let rows = sqlx::query("SELECT source_id, name, pending FROM group_links WHERE pair = $1")
            .bind(pair)
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::db("reading group links"))?;
        for r in rows {
            let link = group_link_from_row(&r)?;
            slice.groups.insert(link.source_id.clone(), link);
        }
    }
    Ok(slice)
}

/// Writes the difference between two link tables (upserts changed or new links, deletes
/// removed ones).
async fn write_diff(
    conn: &mut SqliteConnection,
    pair: &str,
    before: &LinkTable,
    after: &LinkTable,
) -> Result<(), StoreError> {
    let ctx = "updating links";
    for id in before
        .users
        .keys()
        .filter(|k| !after.users.contains_key(*k))
    {
        sqlx::query("DELETE FROM user_links WHERE pair = $1 AND source_id = $2")
            .bind(pair)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db(ctx))?;
    }
    for (id, link) in after
        .users
        .iter()
        .filter(|(k, v)| before.users.get(*k) != Some(*v))
    {
        sqlx::query(
            "INSERT INTO user_links (pair, source_id, username, target_key, pending_username, deactivated_at_ms, photo_tag)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (pair, source_id) DO UPDATE SET username = excluded.username,
                target_key = excluded.target_key, pending_username = excluded.pending_username,
                deactivated_at_ms = excluded.deactivated_at_ms, photo_tag = excluded.photo_tag",
        )
        .bind(pair)
        .bind(id)
        .bind(&link.username)
        .bind(&link.target_key)
        .bind(&link.pending_username)
        .bind(link.deactivated_at_ms)
        .bind(&link.photo_tag)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db(ctx))?;
    }
    for id in before
        .groups
        .keys()
        .filter(|k| !after.groups.contains_key(*k))
    {
        sqlx::query("DELETE FROM group_links WHERE pair = $1 AND source_id = $2")
            .bind(pair)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::db(ctx))?;
    }
    for (id, link) in after
        .groups
        .iter()
        .filter(|(k, v)| before.groups.get(*k) != Some(*v))
    {
        sqlx::query(
            "INSERT INTO group_links (pair, source_id, name, pending) VALUES ($1, $2, $3, $4)
             ON CONFLICT (pair, source_id) DO UPDATE SET name = excluded.name, pending = excluded.pending",
        )
        .bind(pair)
        .bind(id)
        .bind(&link.name)
        .bind(link.pending)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::db(ctx))?;
    }
    Ok(())
}
