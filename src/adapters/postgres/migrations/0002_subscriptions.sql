-- 0002: subscriptions, their cursors and dead letters (the SubscriptionStore port), and the change
-- feed: triggers that NOTIFY in the transaction of each change of a subscription or a principal, so
-- that other instances hear of it at its commit, and never of a change that rolled back.

CREATE TABLE cds_subscriptions (
  name text COLLATE "C" PRIMARY KEY,
  version integer NOT NULL,
  spec jsonb NOT NULL,
  created_at text NOT NULL,
  updated_at text NOT NULL
);

-- One row per subscription and partition; pending and anchors as JSON text (json, not jsonb: written
-- at every cursor commit, read only at start, so the cheaper type to write).
CREATE TABLE cds_subscription_cursors (
  name text COLLATE "C" NOT NULL REFERENCES cds_subscriptions (name) ON DELETE CASCADE,
  partition integer NOT NULL,
  next bigint NOT NULL,
  pending json NOT NULL,
  anchors json NOT NULL,
  PRIMARY KEY (name, partition)
);

CREATE TABLE cds_dead_letters (
  name text COLLATE "C" NOT NULL REFERENCES cds_subscriptions (name) ON DELETE CASCADE,
  partition integer NOT NULL,
  "offset" bigint NOT NULL,
  letter json NOT NULL,
  PRIMARY KEY (name, partition, "offset")
);

-- The change feed (adapters/postgres/change-feed.ts) LISTENs on cds_changes. The payload is JSON:
-- {"kind": "subscription", "name": ..., "version": n | null (deleted)} or {"kind": "principal", "name": id}.
CREATE FUNCTION cds_notify_subscription() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('cds_changes', json_build_object('kind', 'subscription', 'name', OLD.name, 'version', NULL)::text);
  ELSE
    PERFORM pg_notify('cds_changes', json_build_object('kind', 'subscription', 'name', NEW.name, 'version', NEW.version)::text);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER cds_subscriptions_notify AFTER INSERT OR UPDATE OR DELETE ON cds_subscriptions
  FOR EACH ROW EXECUTE FUNCTION cds_notify_subscription();

CREATE FUNCTION cds_notify_principal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('cds_changes', json_build_object('kind', 'principal', 'name', OLD.id)::text);
  ELSE
    PERFORM pg_notify('cds_changes', json_build_object('kind', 'principal', 'name', NEW.id)::text);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER cds_principals_notify AFTER INSERT OR UPDATE OR DELETE ON cds_principals
  FOR EACH ROW EXECUTE FUNCTION cds_notify_principal();
