-- How many chunks of each knowledge base contain each full-text lexeme, for IDF-weighted ranking.
--
-- Postgres ranks full-text matches without document frequencies: a question's common words
-- ("file", "use") weigh as much as its rare ones ("u00e9", "escapes"), and an OR query over
-- them matches most of a large knowledge base, all of which must be ranked. With these counts,
-- search weighs each query lexeme by its inverse document frequency (as BM25 does) and leaves
-- out the commonest ones. Rebuilt from `ts_stat` at the end of every sync that changed chunks.

CREATE TABLE lexeme_stats (
  tenant          text    NOT NULL DEFAULT current_setting('concierge.tenant', true),
  knowledge_base  text    NOT NULL,
  lexeme          text    NOT NULL,
  chunks          integer NOT NULL CHECK (chunks > 0),
  PRIMARY KEY (tenant, knowledge_base, lexeme),
  FOREIGN KEY (tenant, knowledge_base) REFERENCES knowledge_bases (tenant, name) ON DELETE CASCADE
);
CREATE INDEX lexeme_stats_lexeme_idx ON lexeme_stats (tenant, lexeme);

ALTER TABLE lexeme_stats ENABLE ROW LEVEL SECURITY;
ALTER TABLE lexeme_stats FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON lexeme_stats
  USING (tenant = current_setting('concierge.tenant', true))
  WITH CHECK (tenant = current_setting('concierge.tenant', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON lexeme_stats TO concierge_app;
