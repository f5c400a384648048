-- 0005: cluster mode (DESIGN 6; ADR 0014): the live members, one lease per subscription with a fencing
-- token, and the reservations of decisionId+revision taken before a publish is appended. Times are the
-- database's clock (clock_timestamp()), so that every instance compares expiries on one clock; an owner
-- decides when to stop on its own monotonic clock (src/cluster/coordinator.ts).

-- One row per running instance, refreshed with its leases; `url` and `grpc` are the addresses it
-- advertises (where clients are redirected to reach the subscriptions it dispatches).
CREATE TABLE cds_members (
  id text COLLATE "C" PRIMARY KEY,
  url text,
  grpc text,
  started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  expires_at timestamptz NOT NULL
);

-- Fencing tokens come from one sequence: a token is never reused, not even by a subscription deleted
-- and created again under the same name, so that a stale owner of the old one cannot write into the new.
CREATE SEQUENCE cds_lease_tokens AS bigint;

-- The lease of a subscription: free when expired (a release sets expires_at to the time of release).
-- The row stays after a release; taking the lease again gives it a new token.
CREATE TABLE cds_leases (
  name text COLLATE "C" PRIMARY KEY REFERENCES cds_subscriptions (name) ON DELETE CASCADE,
  owner text COLLATE "C" NOT NULL,
  token bigint NOT NULL,
  acquired_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX cds_leases_owner ON cds_leases (owner);

-- A decisionId+revision reserved by an instance before its append (idempotent publish across
-- instances). `partition` and `from_offset` say where the append lands at or after (the tail of the
-- key's partition when reserving) and `received_at` is the record's timestamp (the owner's clock), so
-- that reconciling a reservation whose owner died reads the log only from there. `"offset"` is set when
-- reconciliation found the record. Rows go once the decision index holds the revision, or when the
-- append failed.
CREATE TABLE cds_publish_reservations (
  decision_id text NOT NULL,
  revision integer NOT NULL,
  owner text COLLATE "C" NOT NULL,
  partition integer NOT NULL,
  from_offset bigint NOT NULL,
  received_at bigint NOT NULL,
  "offset" bigint,
  reserved_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (decision_id, revision)
);
CREATE INDEX cds_publish_reservations_open ON cds_publish_reservations (reserved_at) WHERE "offset" IS NULL;
