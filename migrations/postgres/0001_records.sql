-- serde-toast PostgreSQL schema, version 1: the records table.
--
-- `{schema}` is replaced by the configured schema name (validated against
-- ^[A-Za-z_][A-Za-z0-9_]{0,62}$ and double-quoted) before this runs. It runs
-- inside the migration transaction, under the schema's advisory lock, and is
-- recorded in {schema}._toast_migrations.
--
-- tenant and class_name hold the key strings with NUL (U+0000) and U+0001
-- escaped (U+0001 '0' and U+0001 '1'): PostgreSQL text cannot hold NUL.

CREATE TABLE IF NOT EXISTS {schema}.records (
    tenant          text        NOT NULL,
    class_name      text        NOT NULL,
    id              uuid        NOT NULL,
    data            jsonb       NOT NULL,
    refs            jsonb       NOT NULL DEFAULT '[]'::jsonb,
    schema_version  bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant, class_name, id)
);

-- Listing one tenant's records of one class, newest first (Store::list).
-- Loads by key use the primary key.
CREATE INDEX IF NOT EXISTS records_listing
    ON {schema}.records (tenant, class_name, created_at DESC, id DESC);
