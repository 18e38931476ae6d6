-- PostgreSQL server time of toast's load statement on a table without
-- statistics, with schema version 1's listing index and with version 2's.
-- BENCHMARKS.md quotes its output. Run against a scratch database:
--
--     psql -h 127.0.0.1 -U postgres test -f benches/profiling/pg-load-plans.sql
--
-- It creates and drops the schema `toast_plan_probe`. Each table first
-- holds 2,000 rows of another tenant, deleted again (as the shared table of
-- a machine with autovacuum off holds dead rows of earlier runs), then 1,000
-- rows of 1 KiB JSON in one tenant and class; nothing is analyzed until the
-- last part.
\set ON_ERROR_STOP on
\timing off
DROP SCHEMA IF EXISTS toast_plan_probe CASCADE;
CREATE SCHEMA toast_plan_probe;
CREATE TABLE toast_plan_probe.v1 (tenant text NOT NULL, class_name text NOT NULL,
    id uuid NOT NULL, data jsonb NOT NULL, refs jsonb NOT NULL DEFAULT '[]'::jsonb,
    schema_version bigint NOT NULL, created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL, PRIMARY KEY (tenant, class_name, id));
CREATE TABLE toast_plan_probe.v2 (LIKE toast_plan_probe.v1 INCLUDING ALL);
-- Version 1's listing index, and version 2's (migrations/postgres/0002).
CREATE INDEX v1_listing ON toast_plan_probe.v1 (tenant, class_name, created_at DESC, id DESC);
CREATE INDEX v2_listing ON toast_plan_probe.v2
    ((tenant || E'\x01/' || class_name), created_at DESC, id DESC);
-- The same rows in both, and the same dead rows before them.
SELECT format($sql$
    INSERT INTO toast_plan_probe.%1$s SELECT 'old', 'Item', gen_random_uuid(),
        jsonb_build_object('body', repeat('x', 990)), '[]', 1, now(), now()
        FROM generate_series(1, 2000);
    DELETE FROM toast_plan_probe.%1$s;$sql$, t)
    FROM unnest(ARRAY['v1', 'v2']) AS t \gexec
INSERT INTO toast_plan_probe.v1 SELECT 'bench', 'Item', gen_random_uuid(),
    jsonb_build_object('n', g, 'body', repeat('x', 990)), '[]', 1,
    now() + g * interval '1 ms', now() FROM generate_series(1, 1000) g;
INSERT INTO toast_plan_probe.v2 SELECT * FROM toast_plan_probe.v1;
SELECT array_agg(id ORDER BY id) AS ids FROM toast_plan_probe.v1 \gset

-- toast's load_one_class statement (src/backend/postgres.rs), on each
-- table: load_v1 and load_v2.
SELECT format($sql$PREPARE load_%1$s(text, text, uuid[]) AS
    SELECT k.n, r.data::text, r.refs::text, r.schema_version, r.created_at, r.updated_at
    FROM (SELECT $1::text AS tenant, $2::text AS class_name OFFSET 0) AS p
    CROSS JOIN unnest($3::uuid[]) WITH ORDINALITY AS k(id, n)
    CROSS JOIN LATERAL (SELECT s.data, s.refs, s.schema_version, s.created_at, s.updated_at
        FROM toast_plan_probe.%1$s AS s
        WHERE s.tenant = p.tenant AND s.class_name = p.class_name AND s.id = k.id
        LIMIT 1) AS r$sql$, t)
    FROM unnest(ARRAY['v1', 'v2']) AS t \gexec
-- The baseline's form: one scan, data only.
PREPARE any_v2(text, uuid[]) AS
    SELECT data::text FROM toast_plan_probe.v2 WHERE tenant = $1 AND id = ANY($2);

\echo '== no statistics: version 1 listing index'
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE load_v1('bench', 'Item', :'ids');
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE load_v1('bench', 'Item', :'ids');
\echo '== no statistics: version 2 listing index'
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE load_v2('bench', 'Item', :'ids');
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE load_v2('bench', 'Item', :'ids');
\echo '== no statistics: the baseline form'
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE any_v2('bench', :'ids');
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE any_v2('bench', :'ids');
ANALYZE toast_plan_probe.v1;
ANALYZE toast_plan_probe.v2;
\echo '== analyzed: version 1, version 2, the baseline form'
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE load_v1('bench', 'Item', :'ids');
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE load_v2('bench', 'Item', :'ids');
EXPLAIN (ANALYZE, COSTS OFF) EXECUTE any_v2('bench', :'ids');
DROP SCHEMA toast_plan_probe CASCADE;
