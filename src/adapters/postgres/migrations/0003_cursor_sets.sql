-- 0003: a subscription's cursors in one row (its partitions' snapshots as one JSON text), instead of
-- one row per partition with json columns (0002). A cursor commit of 200 subscriptions then writes
-- 200 rows instead of one per partition, and the server neither parses nor compresses the snapshots
-- (text, STORAGE EXTERNAL): measured twice as fast (ADR 0006). `partitions` lists the partitions the
-- text holds, so that a commit of every partition (the engine's case) replaces the text whole and only
-- a commit of some partitions merges, in SQL.

CREATE TABLE cds_subscription_cursor_sets (
  name text COLLATE "C" PRIMARY KEY REFERENCES cds_subscriptions (name) ON DELETE CASCADE,
  partitions integer[] NOT NULL,
  cursors text NOT NULL
);
ALTER TABLE cds_subscription_cursor_sets ALTER cursors SET STORAGE EXTERNAL;

INSERT INTO cds_subscription_cursor_sets (name, partitions, cursors)
SELECT name,
       array_agg(partition ORDER BY partition),
       json_agg(json_build_object('partition', partition, 'next', next, 'pending', pending, 'anchors', anchors)
                ORDER BY partition)::text
FROM cds_subscription_cursors
GROUP BY name;

DROP TABLE cds_subscription_cursors;
