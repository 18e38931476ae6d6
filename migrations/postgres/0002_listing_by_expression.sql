-- serde-toast PostgreSQL schema, version 2: the listing index on an
-- expression, so that loads by key can only use the primary key.
--
-- Version 1 indexed (tenant, class_name, created_at DESC, id DESC). Its
-- leading columns are the primary key's, and on a table without statistics
-- (never analyzed: autovacuum off, or not run yet)
-- the planner costs a probe by (tenant, class_name, id) the same on both
-- indexes and took the listing one, reading the whole class for every id:
-- a load of 1,000 keys from a class of 1,000 rows took 24 ms of server time
-- instead of 2.7 ms. Listing now matches `tenant || U+0001 '/' || class_name`,
-- a key the stored names cannot fake (their escapes are U+0001 '0' and
-- U+0001 '1', see 0001), and which a load's conditions never name.
--
-- The index is dropped and rebuilt inside the migration transaction, which
-- holds the table's ACCESS EXCLUSIVE lock until it commits: reads and
-- writes of the table wait for the rebuild, which takes longer the more
-- rows the table holds (try it on a copy before upgrading a large one).

DROP INDEX IF EXISTS {schema}.records_listing;
CREATE INDEX records_listing
    ON {schema}.records ((tenant || E'\x01/' || class_name), created_at DESC, id DESC);
