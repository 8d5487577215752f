-- Runs stored by operation, not as one blob (issue 8). A run's plan and report used to be two
-- JSON documents on its row (too big for SQLite at 300k users); now each operation subject is
-- a row of `run_items` and the run row keeps a small summary. Portable: plain TEXT / BIGINT,
-- JSON only as TEXT that is never queried inside; `WITHOUT ROWID` is SQLite's clustered
-- primary key (PostgreSQL: drop the clause).

-- The report without its lists (usersync_core::report::ReportSummary, JSON): figures,
-- held/stopped reasons, read stats, warnings, rows per kind. Old runs keep `plan`/`report`.
ALTER TABLE runs ADD COLUMN summary TEXT;

-- The texts of a run's rows (subject names, group names, reasons), each stored once per run:
-- a username appears in its create, avatar and every membership row, a templated reason in
-- thousands. `text_key` is the lower-cased text when it differs (name search).
CREATE TABLE run_texts (
    run_id    BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    id        BIGINT  NOT NULL,
    text      TEXT    NOT NULL,
    text_key  TEXT,
    PRIMARY KEY (run_id, id)
) WITHOUT ROWID;

-- One row per operation subject (usersync_core::items::RunItem): an operation's `seq`, and
-- `sub` for each username of a batched membership add; unchanged / conflict / skipped /
-- target-only subjects numbered after the last operation. `name`, `grp` and `reason` are
-- run_texts ids.
--   kind:   1 create, 2 adopt, 3 update, 4 rename, 5 reactivate, 6 deactivate, 7 delete,
--           8 create_group, 9 adopt_group, 10 delete_group, 11 add_member, 12 remove_member,
--           13 avatar, 14 unchanged, 15 conflict, 16 skipped, 17 target_only
--   status: 0 pending, 1 started, 2 applied, 3 failed, 4 skipped
CREATE TABLE run_items (
    run_id      BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq         BIGINT  NOT NULL,
    sub         BIGINT  NOT NULL,
    kind        BIGINT  NOT NULL,
    name        BIGINT  NOT NULL,              -- the subject: username or group name
    grp         BIGINT,                        -- the group of a membership row
    source_id   TEXT,
    reason      BIGINT,
    detail      TEXT,                          -- compact JSON ItemDetail, only when set
    status      BIGINT  NOT NULL,
    outcome     TEXT,                          -- JSON OpOutcome when it says more than status
    started_ms  BIGINT,
    finished_ms BIGINT,
    PRIMARY KEY (run_id, seq, sub)
) WITHOUT ROWID;
-- The result views, without secondary indexes on run_items (an index entry costs about 15
-- bytes a row: 9 MB per index at 50k users / 585k memberships):
-- * plan order: the primary key;
-- * by kind: the plan is ordered by phase, so each kind's rows are one range of `seq`, which
--   the run's summary records (`ranges`): a primary-key range scan;
-- * by subject name: the run's texts matching the search, then their rows from
--   `run_postings`: per subject name, the (seq, sub) keys of the rows named so, as unsigned
--   LEB128 varints (seq delta from the previous row, then sub): about 3 bytes a row.
CREATE TABLE run_postings (
    run_id   BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    text_id  BIGINT  NOT NULL,
    item_keys BLOB   NOT NULL,
    PRIMARY KEY (run_id, text_id)
) WITHOUT ROWID;
