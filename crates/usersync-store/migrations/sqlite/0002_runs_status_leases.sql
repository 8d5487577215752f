-- One run status everywhere (usersync_core::run::RunStatus): 'partially_failed' is 'partial'.
-- Runs keep their error, the lease they ran under and the approval they applied; per-pair
-- leases keep two runs of one connector–target pair from overlapping, across processes.
UPDATE runs SET status = 'partial' WHERE status = 'partially_failed';

-- Why the run failed, for runs that ended before a report could be made.
ALTER TABLE runs ADD COLUMN error TEXT;
-- The process that ran it and the lease's fencing token at the time (NULL: run without lease).
ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN lease_token BIGINT;
-- The held run whose removals this run was approved to apply, who approved, and when.
ALTER TABLE runs ADD COLUMN approved_run BIGINT;
ALTER TABLE runs ADD COLUMN approved_by TEXT;
ALTER TABLE runs ADD COLUMN approved_ms BIGINT;

-- One lease per connector–target pair. Acquiring increments `token` (fencing: a write made
-- under an older token is refused); the holder renews before `expires_ms`; releasing sets
-- `expires_ms` to 0. The row is kept so the token only ever grows.
CREATE TABLE leases (
    pair         TEXT    NOT NULL PRIMARY KEY,
    owner        TEXT    NOT NULL,
    token        BIGINT  NOT NULL,
    acquired_ms  BIGINT  NOT NULL,
    expires_ms   BIGINT  NOT NULL,
    run_id       BIGINT                         -- the run started under this lease, if any
);
