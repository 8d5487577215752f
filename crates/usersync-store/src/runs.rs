//! Runs stored by operation ([`RunItem`] rows in `run_items`) with a small summary on the run
//! row ([`ReportSummary`]), instead of the plan and report as two JSON documents.
//!
//! Writes go in chunked transactions ([`CHUNK_ROWS`] rows, multi-row `INSERT`s of
//! [`ROWS_PER_STATEMENT`]) from an iterator over the plan, so neither a whole-report document
//! nor all rows are ever held. Reads are pages (offset/limit, filtered by kind and by a
//! case-insensitive name search) or a keyset stream for NDJSON. Names and reasons repeat across
//! rows (a username in its create, avatar and membership rows; templated reasons), so each
//! distinct text is stored once per run in `run_texts` and rows refer to it by id.
//!
//! Runs recorded before these rows keep their `plan` / `report` blobs and `run_ops`; they stay
//! readable through [`Store::legacy_report`] and [`Store::run`], and retention deletes them.

use crate::{Store, StoreError, now_ms};
use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Row as _, Sqlite, SqliteConnection};
use std::collections::{BTreeMap, HashMap};
use usersync_core::items::{ItemDetail, ItemKind, ItemStatus, RunItem, plan_items};
use usersync_core::model::name_key;
use usersync_core::plan::{OpOutcome, Operation, Plan};
use usersync_core::report::{Report, ReportSummary};
use usersync_core::run::{RunMode, RunStatus};

/// Rows per write transaction: short enough that the journal of a concurrent apply is not
/// kept waiting, long enough that commits do not dominate.
pub const CHUNK_ROWS: usize = 4000;
/// Rows per `INSERT` statement (12 values each, well under SQLite's 32,766 variables).
pub const ROWS_PER_STATEMENT: usize = 400;
/// Keys looked up per query by a name search.
const KEYS_PER_QUERY: usize = 500;
/// Rows per read when streaming.
const STREAM_PAGE: u32 = 2000;

/// How much run history to keep (config `[runs]`). A run is deleted, with its rows, when it
/// is older than `keep_days` or not among the `keep_runs` newest of its pair; the newest run
/// of each pair and running runs are always kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Runs kept per pair.
    pub keep_runs: u32,
    /// Days a run is kept.
    pub keep_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_runs: 200,
            keep_days: 30,
        }
    }
}

/// Which rows of a run to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFilter {
    /// Only this kind.
    pub kind: Option<ItemKind>,
    /// Only subjects whose name contains this (case-insensitive).
    pub search: Option<String>,
}

/// A run's summary row: the list fields ([`crate::RunSummary`]) plus its report summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// Id, pair, mode, status, times, error, approval.
    #[serde(flatten)]
    pub run: crate::RunSummary,
    /// The report without its lists; `None` for a run that failed before planning, or one
    /// recorded before runs were stored as rows (see `legacy`).
    pub report: Option<ReportSummary>,
    /// Recorded by an older version as one report document (read it with
    /// [`Store::legacy_report`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy: bool,
}

/// Interns the texts of one run's rows (names, groups, reasons) while they are written: each
/// distinct text gets one `run_texts` row, and rows refer to it by id.
pub(crate) struct Texts {
    run_id: i64,
    ids: HashMap<String, i64>,
    next: i64,
    /// Texts given an id since the last [`Texts::flush`].
    fresh: Vec<(i64, String)>,
}

impl Texts {
    async fn start(conn: &mut SqliteConnection, run_id: i64) -> Result<Texts, StoreError> {
        let max: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM run_texts WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(&mut *conn)
                .await
                .map_err(StoreError::db("reading a run's texts"))?;
        Ok(Texts {
            run_id,
            ids: HashMap::new(),
            next: max.unwrap_or(0) + 1,
            fresh: Vec::new(),
        })
    }

    /// The id of `text`, allocating one (written by the next [`Texts::flush`]) if new.
    fn id(&mut self, text: &str) -> i64 {
        if let Some(id) = self.ids.get(text) {
            return *id;
        }
        let id = self.next;
        self.next += 1;
        self.ids.insert(text.to_string(), id);
        self.fresh.push((id, text.to_string()));
        id
    }

    /// Writes the texts allocated since the last flush.
    async fn flush(&mut self, conn: &mut SqliteConnection) -> Result<(), StoreError> {
        let fresh = std::mem::take(&mut self.fresh);
        for batch in fresh.chunks(ROWS_PER_STATEMENT * 2) {
            let mut q =
                QueryBuilder::<Sqlite>::new("INSERT INTO run_texts (run_id, id, text, text_key) ");
            q.push_values(batch, |mut b, (id, text)| {
                let key = name_key(text);
                b.push_bind(self.run_id)
                    .push_bind(*id)
                    .push_bind(text.clone())
                    .push_bind((key != *text).then_some(key));
            });
            q.build()
                .execute(&mut *conn)
                .await
                .map_err(crate::journal::run_op_err(self.run_id))?;
        }
        Ok(())
    }
}

fn to_json<T: Serialize>(what: &str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v)
        .map_err(|e| StoreError::Invalid(format!("{what} cannot be serialised: {e}")))
}

/// The outcome column: only when the outcome says more than the status.
fn outcome_json(outcome: Option<&OpOutcome>) -> Result<Option<String>, StoreError> {
    match outcome {
        None | Some(OpOutcome::Applied { target_key: None }) => Ok(None),
        Some(o) => to_json("an outcome", o).map(Some),
    }
}

/// The name search's lists being built while a plan is written: per subject-name text id,
/// the last `seq` added and the encoded keys.
#[derive(Default)]
pub(crate) struct Postings {
    lists: HashMap<i64, (u32, Vec<u8>)>,
}

impl Postings {
    /// Adds row `(seq, sub)` to `name`'s list; rows come in plan order.
    fn add(&mut self, name: i64, seq: u32, sub: u32) {
        let (last, bytes) = self.lists.entry(name).or_insert((0, Vec::new()));
        push_varint(bytes, u64::from(seq.saturating_sub(*last)));
        push_varint(bytes, u64::from(sub));
        *last = seq;
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Decodes a posting list into (seq, sub) keys.
fn decode_keys(bytes: &[u8]) -> Option<Vec<(u32, u32)>> {
    let mut out = Vec::new();
    let mut it = bytes.iter();
    let mut next = || -> Option<Option<u64>> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let Some(b) = it.next() else {
                return if shift == 0 { Some(None) } else { None };
            };
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(Some(v));
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    };
    let mut seq = 0u64;
    while let Some(delta) = next()? {
        seq += delta;
        let sub = next()??;
        out.push((u32::try_from(seq).ok()?, u32::try_from(sub).ok()?));
    }
    Some(out)
}

/// The detail column: compact JSON, without a create's e-mail when it equals the username
/// (the usual UPN = mail case; restored by [`item_from_row`]).
fn stored_detail(it: &RunItem) -> Result<Option<String>, StoreError> {
    if it.detail.is_empty() {
        return Ok(None);
    }
    if it.kind == ItemKind::Create && it.detail.email.as_deref() == Some(it.name.as_str()) {
        let mut d = it.detail.clone();
        d.email = None;
        return to_json("a row's detail", &d).map(Some);
    }
    to_json("a row's detail", &it.detail).map(Some)
}

/// Inserts rows (one multi-row statement per [`ROWS_PER_STATEMENT`]) and their new texts on
/// `conn`.
pub(crate) async fn insert_items(
    conn: &mut SqliteConnection,
    texts: &mut Texts,
    items: &[RunItem],
    stamp: (Option<i64>, Option<i64>),
    mut postings: Option<&mut Postings>,
) -> Result<(), StoreError> {
    for batch in items.chunks(ROWS_PER_STATEMENT) {
        let mut rows = Vec::with_capacity(batch.len());
        for it in batch {
            let name = texts.id(&it.name);
            if let Some(p) = postings.as_deref_mut() {
                p.add(name, it.seq, it.sub);
            }
            let grp = it.group.as_deref().map(|g| texts.id(g));
            let reason = it.reason.as_deref().map(|r| texts.id(r));
            let detail = stored_detail(it)?;
            rows.push((
                it,
                name,
                grp,
                reason,
                detail,
                outcome_json(it.outcome.as_ref())?,
            ));
        }
        texts.flush(conn).await?;
        let run_id = texts.run_id;
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO run_items (run_id, seq, sub, kind, name, grp, source_id, reason, detail, status, outcome, started_ms, finished_ms) ",
        );
        q.push_values(rows, |mut b, (it, name, grp, reason, detail, outcome)| {
            b.push_bind(run_id)
                .push_bind(i64::from(it.seq))
                .push_bind(i64::from(it.sub))
                .push_bind(it.kind.code())
                .push_bind(name)
                .push_bind(grp)
                .push_bind(it.source_id.clone())
                .push_bind(reason)
                .push_bind(detail)
                .push_bind(it.status.code())
                .push_bind(outcome)
                .push_bind(stamp.0)
                .push_bind(stamp.1);
        });
        q.push(
            " ON CONFLICT (run_id, seq, sub) DO UPDATE SET status = excluded.status, outcome = excluded.outcome,
               started_ms = COALESCE(excluded.started_ms, run_items.started_ms), finished_ms = excluded.finished_ms",
        );
        q.build()
            .execute(&mut *conn)
            .await
            .map_err(crate::journal::run_op_err(run_id))?;
    }
    Ok(())
}

/// Records an operation's progress in its rows (the journal's `run_ops` role): updates them,
/// or inserts them when the plan was not saved as rows (a journal used on its own).
pub(crate) async fn record_op(
    conn: &mut SqliteConnection,
    run_id: i64,
    op: &Operation,
    outcome: Option<&OpOutcome>,
) -> Result<(), StoreError> {
    let now = now_ms();
    let (status, started, finished) = match outcome {
        None => (ItemStatus::Started, Some(now), None),
        Some(o) => (ItemStatus::of(o), None, Some(now)),
    };
    let done = if outcome.is_none() {
        sqlx::query(
            "UPDATE run_items SET status = $1, started_ms = $2, outcome = NULL, finished_ms = NULL WHERE run_id = $3 AND seq = $4",
        )
        .bind(status.code())
        .bind(now)
        .bind(run_id)
        .bind(i64::from(op.seq))
        .execute(&mut *conn)
        .await
    } else {
        sqlx::query(
            "UPDATE run_items SET status = $1, outcome = $2, finished_ms = $3 WHERE run_id = $4 AND seq = $5",
        )
        .bind(status.code())
        .bind(outcome_json(outcome)?)
        .bind(now)
        .bind(run_id)
        .bind(i64::from(op.seq))
        .execute(&mut *conn)
        .await
    }
    .map_err(StoreError::db("recording an operation in its run"))?;
    if done.rows_affected() > 0 {
        return Ok(());
    }
    let mut items = RunItem::of_op(op);
    for it in &mut items {
        it.status = status;
        it.outcome = outcome.cloned();
    }
    let mut texts = Texts::start(conn, run_id).await?;
    insert_items(conn, &mut texts, &items, (started, finished), None).await
}

fn item_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<RunItem, StoreError> {
    let e = || StoreError::db("reading a run's rows");
    let seq: i64 = r.try_get("seq").map_err(e())?;
    let what = || format!("row {seq} of a run");
    let sub: i64 = r.try_get("sub").map_err(e())?;
    let kind: i64 = r.try_get("kind").map_err(e())?;
    let status: i64 = r.try_get("status").map_err(e())?;
    let name: String = r.try_get("name").map_err(e())?;
    let detail: Option<String> = r.try_get("detail").map_err(e())?;
    let outcome: Option<String> = r.try_get("outcome").map_err(e())?;
    let status = ItemStatus::from_code(status)
        .ok_or_else(|| StoreError::corrupt(what(), "unknown status"))?;
    let outcome = match outcome {
        Some(o) => Some(serde_json::from_str(&o).map_err(|x| StoreError::corrupt(what(), x))?),
        None if status == ItemStatus::Applied => Some(OpOutcome::Applied { target_key: None }),
        None => None,
    };
    let kind =
        ItemKind::from_code(kind).ok_or_else(|| StoreError::corrupt(what(), "unknown kind"))?;
    let mut detail: ItemDetail = match detail {
        Some(d) => serde_json::from_str(&d).map_err(|x| StoreError::corrupt(what(), x))?,
        None => ItemDetail::default(),
    };
    if kind == ItemKind::Create && detail.email.is_none() {
        detail.email = Some(name.clone());
    }
    Ok(RunItem {
        seq: u32::try_from(seq).map_err(|x| StoreError::corrupt(what(), x))?,
        sub: u32::try_from(sub).map_err(|x| StoreError::corrupt(what(), x))?,
        kind,
        name,
        group: r.try_get("grp").map_err(e())?,
        source_id: r.try_get("source_id").map_err(e())?,
        reason: r.try_get("reason_text").map_err(e())?,
        detail,
        status,
        outcome,
    })
}

const ITEM_COLUMNS: &str = "SELECT i.seq, i.sub, i.kind, n.text AS name, g.text AS grp, i.source_id, r.text AS reason_text, i.detail, i.status, i.outcome
     FROM run_items i JOIN run_texts n ON n.run_id = i.run_id AND n.id = i.name
     LEFT JOIN run_texts g ON g.run_id = i.run_id AND g.id = i.grp
     LEFT JOIN run_texts r ON r.run_id = i.run_id AND r.id = i.reason WHERE i.run_id = ";

/// `%text%` for `LIKE … ESCAPE '\'`, lower-cased like `name_key`.
fn like_pattern(search: &str) -> String {
    let mut p = String::from("%");
    for c in name_key(search).chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A kind's `seq` range in a run (from its summary), so a kind filter is a key range scan.
type KindRange = Option<[u32; 2]>;

fn push_filter(q: &mut QueryBuilder<Sqlite>, run_id: i64, f: &ItemFilter, range: KindRange) {
    q.push_bind(run_id);
    if let Some(k) = f.kind {
        if let Some([first, last]) = range {
            q.push(" AND i.seq BETWEEN ")
                .push_bind(i64::from(first))
                .push(" AND ")
                .push_bind(i64::from(last));
        }
        q.push(" AND i.kind = ").push_bind(k.code());
    }
    if let Some(s) = f.search.as_deref().filter(|s| !s.is_empty()) {
        // Match the run's distinct texts, then their rows (index by name).
        q.push(" AND i.name IN (SELECT t.id FROM run_texts t WHERE t.run_id = ")
            .push_bind(run_id)
            .push(" AND COALESCE(t.text_key, t.text) LIKE ")
            .push_bind(like_pattern(s))
            .push(" ESCAPE '\\')");
    }
}

impl Store {
    /// Saves a run's plan as rows (all pending) and its summary, whose `items` counts the rows
    /// stored per kind. `store_unchanged` says whether users with nothing to change get rows
    /// too (their number is always in the summary's `counts.users_unchanged`). Rows are
    /// written in chunked transactions straight from the plan.
    pub async fn save_plan(
        &self,
        run_id: i64,
        plan: &Plan,
        mode: RunMode,
        store_unchanged: bool,
    ) -> Result<(), StoreError> {
        const CTX: &str = "saving a plan";
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::db(CTX))?;
        if exists.is_none() {
            return Err(StoreError::NotFound {
                what: format!("run {run_id}"),
            });
        }
        let mut counts: BTreeMap<ItemKind, u64> = BTreeMap::new();
        let mut ranges: BTreeMap<ItemKind, [u32; 2]> = BTreeMap::new();
        let mut postings = Postings::default();
        let mut texts = {
            let mut conn = self.pool.acquire().await.map_err(StoreError::db(CTX))?;
            Texts::start(&mut conn, run_id).await?
        };
        let mut rows =
            plan_items(plan).filter(|it| store_unchanged || it.kind != ItemKind::Unchanged);
        let mut chunk = Vec::with_capacity(CHUNK_ROWS);
        loop {
            chunk.clear();
            chunk.extend(rows.by_ref().take(CHUNK_ROWS));
            if chunk.is_empty() {
                break;
            }
            for it in &chunk {
                *counts.entry(it.kind).or_default() += 1;
                let r = ranges.entry(it.kind).or_insert([it.seq, it.seq]);
                r[0] = r[0].min(it.seq);
                r[1] = r[1].max(it.seq);
            }
            let mut w = self.write_tx(CTX).await?;
            insert_items(
                &mut w.tx,
                &mut texts,
                &chunk,
                (None, None),
                Some(&mut postings),
            )
            .await?;
            w.tx.commit().await.map_err(StoreError::db(CTX))?;
        }
        // The name search's lists, written once every row is.
        let lists: Vec<(i64, Vec<u8>)> = postings
            .lists
            .into_iter()
            .map(|(id, (_, bytes))| (id, bytes))
            .collect();
        for part in lists.chunks(CHUNK_ROWS) {
            let mut w = self.write_tx(CTX).await?;
            for batch in part.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "INSERT INTO run_postings (run_id, text_id, item_keys) ",
                );
                q.push_values(batch, |mut b, (id, bytes)| {
                    b.push_bind(run_id).push_bind(*id).push_bind(bytes.clone());
                });
                q.build()
                    .execute(&mut *w.tx)
                    .await
                    .map_err(StoreError::db(CTX))?;
            }
            w.tx.commit().await.map_err(StoreError::db(CTX))?;
        }
        let mut summary = ReportSummary::of_plan(plan, mode);
        summary.items = counts;
        summary.ranges = ranges;
        let _guard = self.write_lock.lock().await;
        sqlx::query("UPDATE runs SET summary = $1 WHERE id = $2")
            .bind(to_json("a run summary", &summary)?)
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(StoreError::db(CTX))?;
        Ok(())
    }

    /// Records the end of a run with its status and report: the report's summary goes on the
    /// run row (its lists are the rows already written by [`Store::save_plan`] and the
    /// journal); operations the apply skipped without journaling them get their outcome. A
    /// run started under a lease that has since been taken over is refused
    /// ([`StoreError::LeaseLost`]), and so is a final status of `running`.
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        report: &Report,
        finished_ms: i64,
    ) -> Result<(), StoreError> {
        const CTX: &str = "finishing a run";
        // Outcomes the journal never saw (a stopped apply's remaining operations).
        let skipped: Vec<(u32, &OpOutcome)> = report
            .operations
            .iter()
            .filter_map(|r| match &r.outcome {
                Some(o @ OpOutcome::Skipped { .. }) => Some((r.op.seq, o)),
                _ => None,
            })
            .collect();
        for part in skipped.chunks(CHUNK_ROWS) {
            let mut w = self.write_tx(CTX).await?;
            for (seq, o) in part {
                sqlx::query(
                    "UPDATE run_items SET status = $1, outcome = $2 WHERE run_id = $3 AND seq = $4 AND status = 0",
                )
                .bind(ItemStatus::Skipped.code())
                .bind(outcome_json(Some(o))?)
                .bind(run_id)
                .bind(i64::from(*seq))
                .execute(&mut *w.tx)
                .await
                .map_err(StoreError::db(CTX))?;
            }
            w.tx.commit().await.map_err(StoreError::db(CTX))?;
        }
        let mut summary = report.summary();
        summary.run.status.get_or_insert(status);
        if let Some(prev) = self.report_summary(run_id).await? {
            summary.items = prev.items;
            summary.ranges = prev.ranges;
        }
        self.end_run(run_id, status, Some(&summary), None, finished_ms)
            .await
    }

    async fn report_summary(&self, run_id: i64) -> Result<Option<ReportSummary>, StoreError> {
        let text: Option<Option<String>> =
            sqlx::query_scalar("SELECT summary FROM runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::db("reading a run summary"))?;
        text.flatten()
            .map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| StoreError::corrupt(format!("summary of run {run_id}"), e))
            })
            .transpose()
    }

    /// A run's summary row and report summary, without its rows.
    pub async fn run_view(&self, run_id: i64) -> Result<Option<RunView>, StoreError> {
        let row = sqlx::query(
            "SELECT id, pair, mode, status, started_ms, finished_ms, error, owner, approved_run, approved_by, approved_ms,
                    summary, report IS NOT NULL AS legacy FROM runs WHERE id = $1",
        )
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::db("reading a run"))?;
        let Some(row) = row else { return Ok(None) };
        let run = crate::run_summary_from_row(&row)?;
        let e = || StoreError::db("reading a run");
        let summary: Option<String> = row.try_get("summary").map_err(e())?;
        let legacy: bool = row.try_get("legacy").map_err(e())?;
        let report = summary
            .map(|t| {
                serde_json::from_str(&t)
                    .map_err(|x| StoreError::corrupt(format!("summary of run {run_id}"), x))
            })
            .transpose()?;
        Ok(Some(RunView {
            run,
            report,
            legacy: legacy && summary_is_none(&row),
        }))
    }

    /// The keys of the rows a name search selects, from the run's posting lists, sorted and
    /// restricted to the filter's kind. `None` without a search, or for a run without a
    /// summary (rows the journal wrote on its own), which is searched by a scan instead.
    async fn searched_keys(
        &self,
        run_id: i64,
        filter: &ItemFilter,
    ) -> Result<Option<Vec<(u32, u32)>>, StoreError> {
        const CTX: &str = "searching a run's rows";
        let Some(search) = filter.search.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let Some(summary) = self.report_summary(run_id).await? else {
            return Ok(None);
        };
        let lists: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT p.item_keys FROM run_texts t
             JOIN run_postings p ON p.run_id = t.run_id AND p.text_id = t.id
             WHERE t.run_id = $1 AND COALESCE(t.text_key, t.text) LIKE $2 ESCAPE '\\'",
        )
        .bind(run_id)
        .bind(like_pattern(search))
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db(CTX))?;
        let mut keys = Vec::new();
        for l in &lists {
            keys.extend(decode_keys(l).ok_or_else(|| {
                StoreError::corrupt(format!("name search lists of run {run_id}"), "bad encoding")
            })?);
        }
        keys.sort_unstable();
        keys.dedup();
        let Some(kind) = filter.kind else {
            return Ok(Some(keys));
        };
        let Some(&[first, last]) = summary.ranges.get(&kind) else {
            return Ok(Some(Vec::new()));
        };
        keys.retain(|(seq, _)| (first..=last).contains(seq));
        // Kinds whose ranges overlap (adoptions of users and groups share a phase): check
        // each row's kind.
        let shared = summary
            .ranges
            .iter()
            .any(|(k, [a, b])| *k != kind && *a <= last && *b >= first);
        if shared {
            let mut kept = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(KEYS_PER_QUERY) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "SELECT i.seq, i.sub FROM run_items i WHERE i.run_id = ",
                );
                q.push_bind(run_id)
                    .push(" AND i.kind = ")
                    .push_bind(kind.code())
                    .push(" AND i.seq IN (");
                let mut sep = q.separated(", ");
                for (seq, _) in chunk {
                    sep.push_bind(i64::from(*seq));
                }
                q.push(")");
                let rows: Vec<(i64, i64)> = q
                    .build_query_as()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(StoreError::db(CTX))?;
                kept.extend(
                    chunk
                        .iter()
                        .filter(|(seq, sub)| rows.contains(&(i64::from(*seq), i64::from(*sub)))),
                );
            }
            keys = kept;
        }
        Ok(Some(keys))
    }

    /// The rows with these keys (sorted), in order.
    async fn rows_by_keys(
        &self,
        run_id: i64,
        keys: &[(u32, u32)],
    ) -> Result<Vec<RunItem>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let mut q = QueryBuilder::<Sqlite>::new(ITEM_COLUMNS);
            q.push_bind(run_id).push(" AND i.seq IN (");
            let mut sep = q.separated(", ");
            for (seq, _) in chunk {
                sep.push_bind(i64::from(*seq));
            }
            q.push(") ORDER BY i.seq, i.sub");
            let rows = q
                .build()
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::db("reading a run's rows"))?;
            for r in &rows {
                let it = item_from_row(r)?;
                if chunk.binary_search(&(it.seq, it.sub)).is_ok() {
                    out.push(it);
                }
            }
        }
        Ok(out)
    }

    /// The `seq` range of the filter's kind in the run, from its summary.
    async fn kind_range(&self, run_id: i64, filter: &ItemFilter) -> Result<KindRange, StoreError> {
        let Some(kind) = filter.kind else {
            return Ok(None);
        };
        Ok(self
            .report_summary(run_id)
            .await?
            .and_then(|s| s.ranges.get(&kind).copied()))
    }

    /// The report document of a run recorded before runs were stored as rows.
    pub async fn legacy_report(
        &self,
        run_id: i64,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let text: Option<Option<String>> =
            sqlx::query_scalar("SELECT report FROM runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::db("reading a run"))?;
        text.flatten()
            .map(|t| {
                serde_json::from_str(&t)
                    .map_err(|e| StoreError::corrupt(format!("report of run {run_id}"), e))
            })
            .transpose()
    }

    /// How many rows of a run match `filter`.
    pub async fn count_run_items(
        &self,
        run_id: i64,
        filter: &ItemFilter,
    ) -> Result<u64, StoreError> {
        if let Some(keys) = self.searched_keys(run_id, filter).await? {
            return Ok(keys.len() as u64);
        }
        let range = self.kind_range(run_id, filter).await?;
        let mut q =
            QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM run_items i WHERE i.run_id = ");
        push_filter(&mut q, run_id, filter, range);
        let n: i64 = q
            .build_query_scalar()
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::db("counting a run's rows"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One page of a run's rows matching `filter`, in plan order.
    pub async fn run_items(
        &self,
        run_id: i64,
        filter: &ItemFilter,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<RunItem>, StoreError> {
        if let Some(keys) = self.searched_keys(run_id, filter).await? {
            let from = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(keys.len());
            let to = from.saturating_add(limit as usize).min(keys.len());
            return self.rows_by_keys(run_id, &keys[from..to]).await;
        }
        let range = self.kind_range(run_id, filter).await?;
        let mut q = QueryBuilder::<Sqlite>::new(ITEM_COLUMNS);
        push_filter(&mut q, run_id, filter, range);
        q.push(" ORDER BY i.seq, i.sub LIMIT ")
            .push_bind(i64::from(limit))
            .push(" OFFSET ")
            .push_bind(i64::try_from(offset).unwrap_or(i64::MAX));
        let rows = q
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("reading a run's rows"))?;
        rows.iter().map(item_from_row).collect()
    }

    /// Every row of a run matching `filter`, in plan order, handed to `each` page by page
    /// (keyset paging: memory stays one page whatever the run's size). Stops at the first
    /// error `each` returns.
    pub async fn for_each_run_item<E: From<StoreError>>(
        &self,
        run_id: i64,
        filter: &ItemFilter,
        mut each: impl FnMut(RunItem) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(keys) = self.searched_keys(run_id, filter).await? {
            for chunk in keys.chunks(STREAM_PAGE as usize) {
                for it in self.rows_by_keys(run_id, chunk).await? {
                    each(it)?;
                }
            }
            return Ok(());
        }
        let mut after: Option<(i64, i64)> = None;
        let range = self.kind_range(run_id, filter).await?;
        loop {
            let mut q = QueryBuilder::<Sqlite>::new(ITEM_COLUMNS);
            push_filter(&mut q, run_id, filter, range);
            if let Some((seq, sub)) = after {
                // (seq, sub) > (a, b), with `seq >= a` first so it is a key range scan.
                q.push(" AND i.seq >= ")
                    .push_bind(seq)
                    .push(" AND (i.seq > ")
                    .push_bind(seq)
                    .push(" OR i.sub > ")
                    .push_bind(sub)
                    .push(")");
            }
            q.push(" ORDER BY i.seq, i.sub LIMIT ")
                .push_bind(i64::from(STREAM_PAGE));
            let rows = q
                .build()
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::db("reading a run's rows"))?;
            let n = rows.len();
            for r in &rows {
                let it = item_from_row(r)?;
                after = Some((i64::from(it.seq), i64::from(it.sub)));
                each(it)?;
            }
            if n < STREAM_PAGE as usize {
                return Ok(());
            }
        }
    }

    /// The operations of the given kinds a run listed (e.g. a held run's removals, for its
    /// approval), rebuilt from its rows; for a run recorded before rows, from its plan
    /// document.
    pub async fn run_operations(
        &self,
        run_id: i64,
        kinds: &[ItemKind],
    ) -> Result<Option<Vec<Operation>>, StoreError> {
        let Some(view) = self.run_view(run_id).await? else {
            return Ok(None);
        };
        if view.report.is_none() {
            let plan: Option<Option<String>> =
                sqlx::query_scalar("SELECT plan FROM runs WHERE id = $1")
                    .bind(run_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(StoreError::db("reading a run's plan"))?;
            let Some(text) = plan.flatten() else {
                return Ok(None);
            };
            let plan: Plan = serde_json::from_str(&text)
                .map_err(|e| StoreError::corrupt(format!("plan of run {run_id}"), e))?;
            let codes: Vec<ItemKind> = kinds.to_vec();
            return Ok(Some(
                plan.ops
                    .into_iter()
                    .filter(|op| {
                        RunItem::of_op(op)
                            .first()
                            .is_some_and(|it| codes.contains(&it.kind))
                    })
                    .collect(),
            ));
        }
        let mut ops = Vec::new();
        for kind in kinds {
            let filter = ItemFilter {
                kind: Some(*kind),
                search: None,
            };
            let mut group: Vec<RunItem> = Vec::new();
            let mut flush = |group: &mut Vec<RunItem>| {
                if let Some(op) = RunItem::to_op(group) {
                    ops.push(op);
                }
                group.clear();
            };
            let mut rows = Vec::new();
            self.for_each_run_item::<StoreError>(run_id, &filter, |it| {
                rows.push(it);
                Ok(())
            })
            .await?;
            for it in rows {
                if group.first().is_some_and(|g| g.seq != it.seq) {
                    flush(&mut group);
                }
                group.push(it);
            }
            flush(&mut group);
        }
        ops.sort_by_key(|o| o.seq);
        Ok(Some(ops))
    }

    /// The operations the journal saw (status other than pending), rebuilt from the rows.
    pub(crate) async fn journaled_ops(
        &self,
        run_id: i64,
    ) -> Result<Vec<crate::RunOpRecord>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(ITEM_COLUMNS.replace(
            "SELECT i.seq,",
            "SELECT i.started_ms, i.finished_ms, i.seq,",
        ));
        q.push_bind(run_id)
            .push(" AND i.status <> 0 ORDER BY i.seq, i.sub");
        let rows = q
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::db("reading a run's operations"))?;
        let mut out: Vec<crate::RunOpRecord> = Vec::new();
        let mut group: Vec<RunItem> = Vec::new();
        let mut times = (None, None);
        let mut flush = |group: &mut Vec<RunItem>, times: (Option<i64>, Option<i64>)| {
            if let Some(op) = RunItem::to_op(group) {
                let first = &group[0];
                out.push(crate::RunOpRecord {
                    seq: op.seq,
                    op,
                    status: match first.status {
                        ItemStatus::Pending | ItemStatus::Started => crate::OpStatus::Started,
                        ItemStatus::Applied => crate::OpStatus::Applied,
                        ItemStatus::Failed => crate::OpStatus::Failed,
                        ItemStatus::Skipped => crate::OpStatus::Skipped,
                    },
                    outcome: first.outcome.clone(),
                    started_ms: times.0,
                    finished_ms: times.1,
                });
            }
            group.clear();
        };
        for r in &rows {
            let it = item_from_row(r)?;
            if group.first().is_some_and(|g| g.seq != it.seq) {
                flush(&mut group, times);
            }
            if group.is_empty() {
                let e = || StoreError::db("reading a run's operations");
                times = (
                    r.try_get("started_ms").map_err(e())?,
                    r.try_get("finished_ms").map_err(e())?,
                );
            }
            group.push(it);
        }
        flush(&mut group, times);
        Ok(out)
    }

    /// Deletes run history beyond `keep` (see [`Retention`]), rows included, in chunked
    /// transactions; `now_ms` is the clock. Returns how many runs were deleted.
    pub async fn prune_runs(&self, keep: Retention, now_ms: i64) -> Result<u64, StoreError> {
        const CTX: &str = "pruning run history";
        let cutoff = now_ms.saturating_sub(i64::from(keep.keep_days).saturating_mul(86_400_000));
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM (SELECT id, status, started_ms,
                    ROW_NUMBER() OVER (PARTITION BY pair ORDER BY id DESC) AS rn FROM runs) r
             WHERE r.status <> $1 AND r.rn > 1 AND (r.rn > $2 OR r.started_ms < $3) ORDER BY id",
        )
        .bind(RunStatus::Running.as_str())
        .bind(i64::from(keep.keep_runs))
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::db(CTX))?;
        for id in &ids {
            self.delete_run(*id).await?;
        }
        if !ids.is_empty() {
            tracing::info!(runs = ids.len(), "pruned run history (retention)");
        }
        Ok(ids.len() as u64)
    }

    /// Deletes one run and its rows, a chunk of rows per transaction.
    async fn delete_run(&self, run_id: i64) -> Result<(), StoreError> {
        const CTX: &str = "deleting a run";
        loop {
            let mut w = self.write_tx(CTX).await?;
            let done = sqlx::query(
                "DELETE FROM run_items WHERE run_id = $1 AND seq IN
                    (SELECT DISTINCT seq FROM run_items WHERE run_id = $1 ORDER BY seq LIMIT $2)",
            )
            .bind(run_id)
            .bind(CHUNK_ROWS as i64)
            .execute(&mut *w.tx)
            .await
            .map_err(StoreError::db(CTX))?;
            let postings = if done.rows_affected() == 0 {
                sqlx::query(
                    "DELETE FROM run_postings WHERE run_id = $1 AND text_id IN
                        (SELECT text_id FROM run_postings WHERE run_id = $1 ORDER BY text_id LIMIT $2)",
                )
                .bind(run_id)
                .bind(CHUNK_ROWS as i64)
                .execute(&mut *w.tx)
                .await
                .map_err(StoreError::db(CTX))?
                .rows_affected()
            } else {
                1
            };
            let texts = if postings == 0 {
                sqlx::query(
                    "DELETE FROM run_texts WHERE run_id = $1 AND id IN
                        (SELECT id FROM run_texts WHERE run_id = $1 ORDER BY id LIMIT $2)",
                )
                .bind(run_id)
                .bind(CHUNK_ROWS as i64)
                .execute(&mut *w.tx)
                .await
                .map_err(StoreError::db(CTX))?
                .rows_affected()
            } else {
                1
            };
            if texts == 0 {
                for sql in [
                    "DELETE FROM run_ops WHERE run_id = $1",
                    "DELETE FROM runs WHERE id = $1",
                ] {
                    sqlx::query(sql)
                        .bind(run_id)
                        .execute(&mut *w.tx)
                        .await
                        .map_err(StoreError::db(CTX))?;
                }
                w.tx.commit().await.map_err(StoreError::db(CTX))?;
                return Ok(());
            }
            w.tx.commit().await.map_err(StoreError::db(CTX))?;
        }
    }
}

fn summary_is_none(row: &sqlx::sqlite::SqliteRow) -> bool {
    row.try_get::<Option<String>, _>("summary")
        .map(|s| s.is_none())
        .unwrap_or(true)
}
