-- Conversation memory: sessions and their messages, one tenant per row, isolated by RLS.

CREATE TABLE sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant text NOT NULL,
  agent text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Target of the messages' composite foreign key, so a message can never point at a
  -- session of another tenant even if application code had a bug.
  UNIQUE (tenant, id)
);
CREATE INDEX sessions_tenant_agent_idx ON sessions (tenant, agent, created_at);

CREATE TABLE messages (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant text NOT NULL,
  session_id uuid NOT NULL,
  seq bigint NOT NULL CHECK (seq > 0),
  role text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
  text text NOT NULL,
  client_message_id text NOT NULL CHECK (client_message_id <> ''),
  reply_to uuid REFERENCES messages (id) ON DELETE SET NULL,
  citations jsonb NOT NULL DEFAULT '[]'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (tenant, session_id) REFERENCES sessions (tenant, id) ON DELETE CASCADE,
  -- Idempotent appends: a resend of the same client id can never become a second row.
  UNIQUE (session_id, client_message_id),
  -- Gap-free order; also the index that pages ListMessages and finds the next seq.
  UNIQUE (session_id, seq)
);

ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY sessions_tenant_isolation ON sessions
  USING (tenant = current_setting('concierge.tenant', true))
  WITH CHECK (tenant = current_setting('concierge.tenant', true));

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY messages_tenant_isolation ON messages
  USING (tenant = current_setting('concierge.tenant', true))
  WITH CHECK (tenant = current_setting('concierge.tenant', true));

-- Default privileges from 0001 cover tables created by the migrating role; granting
-- explicitly keeps this migration correct when another role runs it.
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions, messages TO concierge_app;
