-- serde-toast PostgreSQL schema, version 3: the primary key leads with the
-- id, so that a load of many ids of one tenant and class is one index scan
-- with `id = ANY(…)` as its index condition.
--
-- Version 1's key, (tenant, class_name, id), put the ids last. PostgreSQL
-- (before 17) then prefers to scan the tenant's and class's whole range of
-- the key with the ids as a filter, or, as toast did to avoid that, a probe
-- per id in a nested loop, which costs about twice the server time of one
-- scan (1,000 ids: ~2.7 ms against ~1.3 ms). With the id first, the array
-- is the key's leading condition on a table with or without statistics and
-- under generic plans: one scan that reads only the asked rows, whatever the
-- tenant and class hold. The key's columns (and so its uniqueness and the
-- upsert's ON CONFLICT target) are unchanged; ids are random or content
-- hashes, so the key is as evenly spread as before.
--
-- The key is rebuilt inside the migration transaction, which holds the
-- table's ACCESS EXCLUSIVE lock until it commits: reads and writes of the
-- table wait for the rebuild, which takes longer the more rows the table
-- holds (try it on a copy before upgrading a large one).

ALTER TABLE {schema}.records
    DROP CONSTRAINT records_pkey,
    ADD CONSTRAINT records_pkey PRIMARY KEY (id, tenant, class_name);
