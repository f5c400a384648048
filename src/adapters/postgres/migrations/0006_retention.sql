-- 0006: retention policies (the RetentionPolicyStore port, ADR 0017), shared by every instance, with a
-- notification on the change feed's channel on every change, so that every instance reloads them.

-- One row per policy; `policy` is the whole record as JSON (opaque to the store but for name and
-- version, which the conditional writes test).
CREATE TABLE cds_retention_policies (
  name text COLLATE "C" PRIMARY KEY,
  version integer NOT NULL CHECK (version > 0),
  policy json NOT NULL
);

-- Payload: {"kind": "retention", "name": "<policy>", "version": n} (0 when deleted).
CREATE FUNCTION cds_notify_retention() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('cds_changes', json_build_object('kind', 'retention', 'name', OLD.name, 'version', 0)::text);
  ELSE
    PERFORM pg_notify('cds_changes', json_build_object('kind', 'retention', 'name', NEW.name, 'version', NEW.version)::text);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER cds_retention_policies_notify AFTER INSERT OR UPDATE OR DELETE ON cds_retention_policies
  FOR EACH ROW EXECUTE FUNCTION cds_notify_retention();
