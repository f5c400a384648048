-- 0004: routing rule sets (the RuleStore port, ADR 0013): immutable versions and the active pointer,
-- shared by every instance, with a notification on the change feed's channel when the pointer moves,
-- so that every instance reloads the set that routes (DESIGN 4: changed at runtime, without restart).

-- One row per stored version (version 0, the built-in set, is never stored). `rule_set` is json, not
-- jsonb: kept as the text it was written, opaque to the store.
CREATE TABLE cds_rule_sets (
  version integer PRIMARY KEY CHECK (version > 0),
  rule_set json NOT NULL,
  created_at text NOT NULL,
  created_by text NOT NULL,
  comment text
);

-- The active pointer: at most one row (absent until the first activation: the built-in set routes).
-- No foreign key, since version 0 is valid and not stored; the store checks the version instead.
CREATE TABLE cds_rule_active (
  id smallint PRIMARY KEY CHECK (id = 1),
  version integer NOT NULL,
  activated_at text NOT NULL,
  activated_by text NOT NULL
);

-- Payload: {"kind": "rules", "name": "<active version>", "version": n}. A version created without
-- activation changes no routing, so only the pointer notifies.
CREATE FUNCTION cds_notify_rules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('cds_changes', json_build_object('kind', 'rules', 'name', '0', 'version', 0)::text);
  ELSE
    PERFORM pg_notify('cds_changes', json_build_object('kind', 'rules', 'name', NEW.version::text, 'version', NEW.version)::text);
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER cds_rule_active_notify AFTER INSERT OR UPDATE OR DELETE ON cds_rule_active
  FOR EACH ROW EXECUTE FUNCTION cds_notify_rules();
