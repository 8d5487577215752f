-- The last known state of each pair's target, so a run whose source read was a delta reads
-- only what changed from the target (usersync_core::target_state). Written whole by a full
-- read, patched row by row by fresh single-object reads and applied operations. The link
-- tables stay the record of what usersync manages; this is a cache of the target.
-- (Numbered 0006 so it does not collide with migrations added in parallel branches.)
CREATE TABLE target_state (
    pair          TEXT    NOT NULL PRIMARY KEY,
    full_read_ms  BIGINT  NOT NULL,   -- when the last full read was made
    fingerprint   TEXT    NOT NULL,   -- configuration it was read and planned with
    clean         INTEGER NOT NULL    -- 0 while an apply runs or after one that did not finish
);

-- Accounts keyed by the product's own key where it has one ('k:' || key), else by the
-- lower-cased username ('n:' || name). Direct group memberships are a JSON array of names.
CREATE TABLE target_accounts (
    pair          TEXT    NOT NULL,
    ident         TEXT    NOT NULL,
    username      TEXT    NOT NULL,
    target_key    TEXT,
    display_name  TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    active        INTEGER NOT NULL,
    groups        TEXT    NOT NULL,
    PRIMARY KEY (pair, ident)
);
-- A patch replaces the stale holder of a reused name by this index (lower() as in the query).
CREATE INDEX target_accounts_name ON target_accounts (pair, lower(username));

CREATE TABLE target_groups (
    pair          TEXT    NOT NULL,
    name_key      TEXT    NOT NULL,   -- lower-cased name
    name          TEXT    NOT NULL,
    PRIMARY KEY (pair, name_key)
);
