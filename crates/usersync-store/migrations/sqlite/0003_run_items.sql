-- Runs stored by operation, not as one blob (issue 8). A run's plan and report used to be two
-- JSON documents on its row (too big for SQLite at 300k users); now each operation subject is
-- a row of `run_items` and the run row keeps a small summary. Portable: plain TEXT / BIGINT,
-- JSON only as TEXT that is never queried inside; `WITHOUT ROWID` is SQLite's clustered
-- primary key (PostgreSQL: drop the clause).

-- The report without its lists (usersync_core::report::ReportSummary, JSON): figures,
-- held/stopped reasons, read stats, warnings, rows per kind. Old runs keep `plan`/`report`.
ALTER TABLE runs ADD COLUMN summary TEXT;

-- Texts repeated across a run's rows (reasons), stored once per run.
CREATE TABLE run_texts (
    run_id  BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    id      BIGINT  NOT NULL,
    text    TEXT    NOT NULL,
    PRIMARY KEY (run_id, id)
) WITHOUT ROWID;

-- One row per operation subject (usersync_core::items::RunItem): an operation's `seq`, and
-- `sub` for each username of a batched membership add; unchanged / conflict / skipped /
-- target-only subjects numbered after the last operation.
--   kind:   1 create, 2 adopt, 3 update, 4 rename, 5 reactivate, 6 deactivate, 7 delete,
--           8 create_group, 9 adopt_group, 10 delete_group, 11 add_member, 12 remove_member,
--           13 avatar, 14 unchanged, 15 conflict, 16 skipped, 17 target_only
--   status: 0 pending, 1 started, 2 applied, 3 failed, 4 skipped
-- `name_key` is the lower-cased subject name (search); `name` is stored only when it differs.
CREATE TABLE run_items (
    run_id      BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq         BIGINT  NOT NULL,
    sub         BIGINT  NOT NULL,
    kind        BIGINT  NOT NULL,
    name_key    TEXT    NOT NULL,
    name        TEXT,
    grp         TEXT,                          -- the group of a membership row
    source_id   TEXT,
    reason      BIGINT,                        -- run_texts.id
    detail      TEXT,                          -- compact JSON ItemDetail, only when set
    status      BIGINT  NOT NULL,
    outcome     TEXT,                          -- JSON OpOutcome when it says more than status
    started_ms  BIGINT,
    finished_ms BIGINT,
    PRIMARY KEY (run_id, seq, sub)
) WITHOUT ROWID;
-- The result views: by kind (in plan order) and name search within a run.
CREATE INDEX run_items_by_kind ON run_items (run_id, kind, seq, sub);
CREATE INDEX run_items_by_name ON run_items (run_id, name_key);
