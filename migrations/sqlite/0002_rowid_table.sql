-- serde-toast SQLite schema, version 2: the records table becomes an ordinary
-- (rowid) table.
--
-- Version 1 declared it WITHOUT ROWID, which keeps every whole row inside the
-- primary-key b-tree. SQLite advises that layout only for rows smaller than
-- about a twentieth of a page; toast's rows are JSON documents, usually a KiB
-- or more, so every insert of a random id split and moved pages full of
-- payload. As a rowid table the payload is appended to the table b-tree and
-- only the small key entries go into the primary-key and listing indexes
-- (1,000 rows of 1 KiB inserted in one statement: 72 ms before, 22 ms after,
-- in Python's sqlite3 with WAL and synchronous=NORMAL).
--
-- This runs inside the migration transaction, under SQLite's write lock.
CREATE TABLE toast_records_v2 (
    tenant          TEXT    NOT NULL,
    class_name      TEXT    NOT NULL,
    id              BLOB    NOT NULL,
    data            BLOB    NOT NULL,
    refs            TEXT,
    schema_version  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant, class_name, id)
);

INSERT INTO toast_records_v2
    (tenant, class_name, id, data, refs, schema_version, created_at, updated_at)
SELECT tenant, class_name, id, data, refs, schema_version, created_at, updated_at
FROM toast_records;

DROP TABLE toast_records;

ALTER TABLE toast_records_v2 RENAME TO toast_records;

CREATE INDEX toast_records_listing
    ON toast_records (tenant, class_name, created_at DESC, id DESC);
