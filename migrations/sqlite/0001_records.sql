-- serde-toast SQLite schema, version 1: one table of records keyed by
-- (tenant, class_name, id), and an index for listing one tenant's class.
CREATE TABLE IF NOT EXISTS toast_records (
    tenant          TEXT    NOT NULL,
    class_name      TEXT    NOT NULL,
    id              BLOB    NOT NULL,
    data            BLOB    NOT NULL,
    refs            TEXT,
    schema_version  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant, class_name, id)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS toast_records_listing
    ON toast_records (tenant, class_name, created_at DESC, id DESC);
