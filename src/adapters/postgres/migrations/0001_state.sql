-- 0001: principals, audit trail, decision index, meta. Applied once, never edited (STYLE habit 8):
-- a change is a new numbered file. Text columns that are sorted on use COLLATE "C" so that the order
-- is the byte order the embedded store and JavaScript use, whatever the database's default collation.

CREATE TABLE cds_principals (
  id text COLLATE "C" PRIMARY KEY,
  key_hash text NOT NULL UNIQUE,
  name text NOT NULL,
  scopes text[] NOT NULL,
  key_prefix text NOT NULL,
  rate_limits jsonb,
  created_at text COLLATE "C" NOT NULL,
  revoked_at text
);
CREATE INDEX cds_principals_created ON cds_principals (created_at, id);

-- The audit trail. `details` is kept as the JSON text it was hashed from, not jsonb (which would
-- reorder keys and normalise numbers).
CREATE TABLE cds_audit (
  seq bigint PRIMARY KEY,
  at text NOT NULL,
  actor text NOT NULL,
  action text NOT NULL,
  target text NOT NULL,
  details text NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL
);

-- The head of the chain: one row, locked FOR UPDATE by every append, so that appends from every
-- instance are serialized and the chain cannot fork.
CREATE TABLE cds_audit_head (
  id smallint PRIMARY KEY CHECK (id = 1),
  seq bigint NOT NULL,
  hash text NOT NULL
);
INSERT INTO cds_audit_head (id, seq, hash) VALUES (1, 0, repeat('0', 64));

-- The decision index: one row per stored revision.
CREATE TABLE cds_decisions (
  decision_id text NOT NULL,
  revision integer NOT NULL,
  partition integer NOT NULL,
  "offset" bigint NOT NULL,
  received_at bigint NOT NULL,
  portfolio_id text NOT NULL,
  strategy_id text NOT NULL,
  symbol text NOT NULL,
  asset_class text NOT NULL,
  type text NOT NULL,
  verdict text NOT NULL,
  priority smallint NOT NULL,
  topics text[] NOT NULL,
  PRIMARY KEY (decision_id, revision)
);
-- Query order (receivedAt, partition, offset), alone and after each indexed equality filter, so that
-- a page is one ordered index range scan.
CREATE INDEX cds_decisions_time ON cds_decisions (received_at, partition, "offset");
CREATE INDEX cds_decisions_portfolio ON cds_decisions (portfolio_id, received_at, partition, "offset");
CREATE INDEX cds_decisions_strategy ON cds_decisions (strategy_id, received_at, partition, "offset");
CREATE INDEX cds_decisions_symbol ON cds_decisions (symbol, received_at, partition, "offset");

-- Per log partition, the next offset not yet indexed.
CREATE TABLE cds_decision_checkpoints (
  partition integer PRIMARY KEY,
  next_offset bigint NOT NULL
);

CREATE TABLE cds_meta (
  key text PRIMARY KEY,
  value text NOT NULL
);
