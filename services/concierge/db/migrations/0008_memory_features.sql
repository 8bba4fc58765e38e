-- Memory features: who answers a session (bot, waiting for a human, a human), running summaries,
-- facts kept per customer, attachment text, a durable hand-off outbox, and what retention and
-- the right to erasure need (customer id on sessions, activity time).

-- Sessions ------------------------------------------------------------------------------------

ALTER TABLE sessions
  ADD COLUMN customer_id text NOT NULL DEFAULT '',
  ADD COLUMN status text NOT NULL DEFAULT 'bot' CHECK (status IN ('bot', 'escalated', 'human')),
  ADD COLUMN handler text NOT NULL DEFAULT '',
  ADD COLUMN escalation_reason text NOT NULL DEFAULT '',
  ADD COLUMN escalated_at timestamptz,
  ADD COLUMN summary text NOT NULL DEFAULT '',
  ADD COLUMN summary_through_seq bigint NOT NULL DEFAULT 0 CHECK (summary_through_seq >= 0),
  -- Last activity (message, status, summary, attachment): retention counts idle time from here.
  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
  -- The session row describes the current hand-off episode only; returning to the bot ends it.
  ADD CONSTRAINT sessions_handler_iff_human CHECK ((status = 'human') = (handler <> '')),
  ADD CONSTRAINT sessions_escalated_at_iff_not_bot CHECK ((status = 'bot') = (escalated_at IS NULL)),
  ADD CONSTRAINT sessions_no_reason_for_bot CHECK (status <> 'bot' OR escalation_reason = '');

-- Existing sessions were last active at their newest message, not at this migration. Under FORCE
-- the owning role would see no rows here (no tenant is set); lift it for this transaction only.
ALTER TABLE sessions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE messages NO FORCE ROW LEVEL SECURITY;
UPDATE sessions s
SET updated_at = coalesce((SELECT max(m.created_at) FROM messages m WHERE m.session_id = s.id), s.created_at);
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;

-- The human agents' inbox: escalated and human-held sessions, newest escalation first.
CREATE INDEX sessions_inbox_idx ON sessions (tenant, status, escalated_at DESC)
  WHERE status IN ('escalated', 'human');
-- Export and erasure of one customer.
CREATE INDEX sessions_customer_idx ON sessions (tenant, customer_id) WHERE customer_id <> '';
-- Retention: an agent's sessions idle since before a cut-off.
CREATE INDEX sessions_retention_idx ON sessions (tenant, agent, updated_at);

-- Messages ------------------------------------------------------------------------------------

ALTER TABLE messages DROP CONSTRAINT messages_role_check;
ALTER TABLE messages
  ADD CONSTRAINT messages_role_check CHECK (role IN ('user', 'assistant', 'system', 'human')),
  -- Display name of the human support agent who wrote a 'human' message.
  ADD COLUMN author text NOT NULL DEFAULT '',
  -- Assistant answers: best retrieval similarity behind them; NULL when nothing was searched.
  ADD COLUMN confidence real CHECK (confidence BETWEEN -1 AND 1),
  ADD CONSTRAINT messages_author_iff_human CHECK ((role = 'human') = (author <> '')),
  ADD CONSTRAINT messages_confidence_only_assistant CHECK (confidence IS NULL OR role = 'assistant');

-- Customer facts ------------------------------------------------------------------------------

CREATE TABLE customer_facts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant text NOT NULL,
  -- A customer across sessions, or `session:<id>` for an anonymous chat.
  customer_id text NOT NULL CHECK (customer_id <> ''),
  -- The agent that remembered it: its retention applies.
  agent text NOT NULL,
  -- Where the fact was learned. No foreign key: facts outlive the session that taught them.
  session_id uuid,
  -- Stored with whitespace collapsed (the service does it); case is folded by the unique index.
  text text NOT NULL CHECK (text <> ''),
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Bumped when the fact is stated again: recall is newest first, retention idles from here.
  last_seen_at timestamptz NOT NULL DEFAULT now()
);
-- A fact stated again (in any case, in any session) is stored once.
CREATE UNIQUE INDEX customer_facts_dedupe_idx ON customer_facts (tenant, customer_id, lower(text));
CREATE INDEX customer_facts_recall_idx ON customer_facts (tenant, customer_id, last_seen_at DESC);
CREATE INDEX customer_facts_retention_idx ON customer_facts (tenant, agent, last_seen_at);

-- Attachments ---------------------------------------------------------------------------------

CREATE TABLE attachments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant text NOT NULL,
  session_id uuid NOT NULL,
  filename text NOT NULL,
  content_type text NOT NULL DEFAULT '',
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  -- Text extracted at upload, already cut to the agent's limit (`truncated` says so).
  text text NOT NULL,
  truncated boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (tenant, session_id) REFERENCES sessions (tenant, id) ON DELETE CASCADE
);
CREATE INDEX attachments_session_idx ON attachments (session_id, created_at);

-- Hand-off outbox -----------------------------------------------------------------------------

CREATE TABLE handoffs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant text NOT NULL,
  session_id uuid NOT NULL,
  agent text NOT NULL,
  url text NOT NULL,
  -- text, not jsonb: the exact bytes are signed and sent, so key order and spacing must survive.
  payload_json text NOT NULL,
  idempotency_key text NOT NULL CHECK (idempotency_key <> ''),
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
  -- Claims so far; a claim counts as an attempt even if its dispatcher dies before finishing.
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  -- A dispatcher holds the delivery until then; an expired lease makes it claimable again.
  lease_until timestamptz,
  last_error text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz,
  FOREIGN KEY (tenant, session_id) REFERENCES sessions (tenant, id) ON DELETE CASCADE,
  UNIQUE (tenant, idempotency_key),
  CONSTRAINT handoffs_delivered_at_iff_delivered CHECK ((state = 'delivered') = (delivered_at IS NOT NULL))
);
-- What a dispatcher claims: due pending deliveries, oldest due first.
CREATE INDEX handoffs_due_idx ON handoffs (tenant, next_attempt_at) WHERE state = 'pending';
CREATE INDEX handoffs_session_idx ON handoffs (session_id, created_at);

-- Row-level security and grants ---------------------------------------------------------------

ALTER TABLE customer_facts ENABLE ROW LEVEL SECURITY;
ALTER TABLE customer_facts FORCE ROW LEVEL SECURITY;
CREATE POLICY customer_facts_tenant_isolation ON customer_facts
  USING (tenant = current_setting('concierge.tenant', true))
  WITH CHECK (tenant = current_setting('concierge.tenant', true));

ALTER TABLE attachments ENABLE ROW LEVEL SECURITY;
ALTER TABLE attachments FORCE ROW LEVEL SECURITY;
CREATE POLICY attachments_tenant_isolation ON attachments
  USING (tenant = current_setting('concierge.tenant', true))
  WITH CHECK (tenant = current_setting('concierge.tenant', true));

ALTER TABLE handoffs ENABLE ROW LEVEL SECURITY;
ALTER TABLE handoffs FORCE ROW LEVEL SECURITY;
CREATE POLICY handoffs_tenant_isolation ON handoffs
  USING (tenant = current_setting('concierge.tenant', true))
  WITH CHECK (tenant = current_setting('concierge.tenant', true));

GRANT SELECT, INSERT, UPDATE, DELETE ON customer_facts, attachments, handoffs TO concierge_app;
