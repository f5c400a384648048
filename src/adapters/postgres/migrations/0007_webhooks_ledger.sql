-- 0007: webhook endpoints (the WebhookStore port, ADR 0010) and the delivery ledger (the LedgerStore
-- port, ADR 0011), shared by every instance instead of each instance's data directory.

-- One row per endpoint. `record` is the WebhookRecord as JSON without its secret (opaque to the store);
-- `secret` is the signing secret as given or generated (`whsec_` + base64), stored as the embedded
-- store keeps it: readable by whoever can read this column (ADR 0006, "Webhook endpoints and the
-- ledger"). It has a column of its own so that a role may be granted the other columns only.
CREATE TABLE cds_webhooks (
  id text COLLATE "C" PRIMARY KEY,
  subscription text COLLATE "C" NOT NULL,
  secret text NOT NULL,
  record json NOT NULL
);

-- Payload: {"kind": "webhook", "name": "<endpoint id>"} (never the secret), so that every instance
-- starts, updates or stops its dispatcher of the endpoint.
CREATE FUNCTION cds_notify_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('cds_changes', json_build_object('kind', 'webhook', 'name', OLD.id)::text);
  ELSE
    PERFORM pg_notify('cds_changes', json_build_object('kind', 'webhook', 'name', NEW.id)::text);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER cds_webhooks_notify AFTER INSERT OR UPDATE OR DELETE ON cds_webhooks
  FOR EACH ROW EXECUTE FUNCTION cds_notify_webhook();

-- One row per commit record (what one cursor commit changed for one subscription and partition),
-- written in one INSERT per commit whatever the number of records. The key is the embedded store's
-- ([subscription, partition, lo, t, seq]): a look-up walks it backwards from (subscription, partition,
-- offset). `body` is the JSON text of the record's r, d, x and l (never parsed by the server).
-- `seq` only orders records of equal (lo, t).
CREATE TABLE cds_ledger (
  subscription text COLLATE "C" NOT NULL,
  partition integer NOT NULL,
  lo bigint NOT NULL,
  t bigint NOT NULL,
  seq bigint GENERATED ALWAYS AS IDENTITY,
  hi bigint NOT NULL,
  body text NOT NULL,
  PRIMARY KEY (subscription, partition, lo, t, seq)
);
-- Pruning deletes by commit time; rows arrive in roughly ascending t, which a BRIN index serves at
-- almost no cost per insert (a b-tree on t would be a second index to maintain at full rate).
CREATE INDEX cds_ledger_t ON cds_ledger USING brin (t);
