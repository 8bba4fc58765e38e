-- Knowledge bases, their documents and chunks, with vector and full-text indexes.
--
-- Vectors of several dimensions: `chunks.embedding` is a `vector` without a fixed dimension, and
-- `dim` (generated from it) says how long each one is. pgvector indexes one dimension per index,
-- so each dimension a model may produce gets a partial HNSW index on the cast expression:
--     USING hnsw ((embedding::vector(N)) vector_cosine_ops) WHERE dim = N
-- A query uses it when it repeats both the cast and the predicate literally
-- (`WHERE dim = N ORDER BY embedding::vector(N) <=> $q::vector(N)`). One table keeps every
-- query, RLS policy and delete in one place; an empty partial index costs nothing. A new model
-- with another dimension needs one more `CREATE INDEX` in a later migration, not a new table.
-- Created here: 384 (all-MiniLM-L6-v2) and 768 (EmbeddingGemma-300m; its Matryoshka sizes
-- 512/256/128 would get their own). HNSW on `vector` stops at 2000 dimensions; larger models
-- need a `halfvec` expression index.
--
-- Every table carries `tenant` and has row-level security with FORCE: the application role sees
-- and writes only the rows of the tenant set by `set_config('concierge.tenant', ..., true)`.

CREATE TABLE knowledge_bases (
  tenant          text        NOT NULL DEFAULT current_setting('concierge.tenant', true),
  name            text        NOT NULL,
  -- sha256 of the spec JSON last synced, for callers that want to know what is applied.
  spec_hash       text        NOT NULL DEFAULT '',
  model           text        NOT NULL,
  dimension       integer     NOT NULL CHECK (dimension > 0),
  language        regconfig   NOT NULL DEFAULT 'english',
  document_count  integer     NOT NULL DEFAULT 0,
  chunk_count     integer     NOT NULL DEFAULT 0,
  last_sync_at    timestamptz,
  -- [{"source": ..., "reason": ...}] of the last sync.
  last_errors     jsonb       NOT NULL DEFAULT '[]',
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, name)
);

CREATE TABLE documents (
  id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant          text        NOT NULL DEFAULT current_setting('concierge.tenant', true),
  knowledge_base  text        NOT NULL,
  -- Name of the KnowledgeSource it came from.
  source          text        NOT NULL,
  -- Identity inside the source: relative file path, URL, or inline title.
  key             text        NOT NULL,
  -- What a citation links to: path relative to the spec's folder, URL, or inline:<source>/<title>.
  uri             text        NOT NULL,
  title           text        NOT NULL,
  format          text        NOT NULL,
  -- sha256 of the raw bytes and of the settings that shape chunks (see retrieval/plan.py):
  -- equal hash, nothing to do.
  content_hash    text        NOT NULL,
  chunk_count     integer     NOT NULL DEFAULT 0,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant, knowledge_base, source, key),
  FOREIGN KEY (tenant, knowledge_base) REFERENCES knowledge_bases (tenant, name) ON DELETE CASCADE
);

CREATE TABLE chunks (
  id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant          text        NOT NULL DEFAULT current_setting('concierge.tenant', true),
  knowledge_base  text        NOT NULL,
  document_id     uuid        NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
  ordinal         integer     NOT NULL,
  -- Heading path inside the document, e.g. "Returns > Refund timing".
  section         text        NOT NULL DEFAULT '',
  -- "Title > Section": prefixed to the text that was embedded and indexed with weight A.
  heading         text        NOT NULL,
  -- Clean text for display; never logged.
  text            text        NOT NULL,
  -- sha256 of heading + text: lets a later sync reuse vectors of unchanged chunks.
  content_hash    text        NOT NULL,
  token_count     integer     NOT NULL,
  language        regconfig   NOT NULL,
  embedding       vector      NOT NULL,
  dim             integer     GENERATED ALWAYS AS (vector_dims(embedding)) STORED,
  tsv             tsvector    GENERATED ALWAYS AS (
                    setweight(to_tsvector(language, heading), 'A') || setweight(to_tsvector(language, text), 'B')
                  ) STORED,
  UNIQUE (document_id, ordinal)
);

CREATE INDEX documents_kb_idx ON documents (tenant, knowledge_base);
CREATE INDEX chunks_kb_idx ON chunks (tenant, knowledge_base);
CREATE INDEX chunks_tsv_idx ON chunks USING gin (tsv);
CREATE INDEX chunks_embedding_384_idx ON chunks USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE dim = 384;
CREATE INDEX chunks_embedding_768_idx ON chunks USING hnsw ((embedding::vector(768)) vector_cosine_ops) WHERE dim = 768;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['knowledge_bases', 'documents', 'chunks'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format(
      'CREATE POLICY tenant_isolation ON %I USING (tenant = current_setting(''concierge.tenant'', true)) '
      'WITH CHECK (tenant = current_setting(''concierge.tenant'', true))', t);
    -- 0001's default privileges cover tables made by the role that ran it; say it explicitly
    -- in case another role migrates.
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO concierge_app', t);
  END LOOP;
END
$$;
