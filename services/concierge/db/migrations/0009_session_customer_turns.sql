-- How many customer messages a session holds, kept with every append: the length rule of an
-- EscalationPolicy (maxTurns, up to 1000) reads it without loading the conversation.
ALTER TABLE sessions ADD COLUMN customer_turns integer NOT NULL DEFAULT 0 CHECK (customer_turns >= 0);

-- FORCE row-level security would hide every row from a non-superuser owner during the backfill.
ALTER TABLE sessions NO FORCE ROW LEVEL SECURITY;
UPDATE sessions s SET customer_turns = (
  SELECT count(*) FROM messages m WHERE m.session_id = s.id AND m.role = 'user'
);
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
