-- usersync state store, initial schema (SQLite).
-- Kept close to portable SQL so a PostgreSQL twin can live in migrations/postgres/:
-- TEXT / BIGINT / booleans as 0/1 integers, JSON as TEXT, blobs as BLOB (BYTEA there).

-- Connectors and their (non-secret) settings. `name` identifies a source→target pair.
CREATE TABLE connectors (
    name        TEXT    NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,
    settings    TEXT    NOT NULL,              -- JSON
    created_ms  BIGINT  NOT NULL,
    updated_ms  BIGINT  NOT NULL
);

-- Secrets, AES-256-GCM encrypted with the master key.
-- sealed = key-version byte || 12-byte nonce || ciphertext+tag; AAD = connector, 0x00, name.
CREATE TABLE connector_secrets (
    connector   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    sealed      BLOB    NOT NULL,
    updated_ms  BIGINT  NOT NULL,
    PRIMARY KEY (connector, name)
);

-- The link table: managed target accounts, keyed by the source's immutable object ID.
CREATE TABLE user_links (
    pair              TEXT    NOT NULL,
    source_id         TEXT    NOT NULL,
    username          TEXT    NOT NULL,
    target_key        TEXT,
    pending_username  TEXT,
    deactivated_at_ms BIGINT,
    photo_tag         TEXT,
    PRIMARY KEY (pair, source_id)
);

-- Managed target groups.
CREATE TABLE group_links (
    pair        TEXT    NOT NULL,
    source_id   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    pending     INTEGER NOT NULL DEFAULT 0,    -- boolean
    PRIMARY KEY (pair, source_id)
);

-- Per-connector source sync state: the connector's cursor (Graph delta links) as JSON, and
-- the last complete snapshot, compressed (`snapshot_encoding` says how).
CREATE TABLE source_state (
    connector          TEXT    NOT NULL PRIMARY KEY,
    cursor             TEXT    NOT NULL,       -- JSON
    snapshot_encoding  TEXT    NOT NULL,       -- 'none' | 'json+zlib'
    snapshot           BLOB,
    snapshot_raw_bytes BIGINT,
    saved_ms           BIGINT  NOT NULL
);

-- Runs: one simulate or sync of a pair.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    pair        TEXT    NOT NULL,
    mode        TEXT    NOT NULL,              -- 'simulate' | 'sync'
    status      TEXT    NOT NULL,              -- 'running' | 'succeeded' | 'partially_failed' | 'held' | 'failed' | 'interrupted'
    started_ms  BIGINT  NOT NULL,
    finished_ms BIGINT,
    plan        TEXT,                          -- JSON
    report      TEXT                           -- JSON
);
CREATE INDEX runs_by_pair ON runs (pair, id);
CREATE INDEX runs_by_status ON runs (status);

-- Per-operation results of a run; `seq` is the operation's position in the plan.
CREATE TABLE run_ops (
    run_id      BIGINT  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq         BIGINT  NOT NULL,
    op          TEXT    NOT NULL,              -- JSON Operation
    status      TEXT    NOT NULL,              -- 'started' | 'applied' | 'failed' | 'skipped'
    outcome     TEXT,                          -- JSON OpOutcome
    started_ms  BIGINT,
    finished_ms BIGINT,
    PRIMARY KEY (run_id, seq)
);
