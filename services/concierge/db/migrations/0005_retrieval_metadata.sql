-- Citation and filter fields of chunks, and vector indexes for EmbeddingGemma's Matryoshka sizes.
--
-- `metadata` holds what search filters on: the document's `source` and `format` plus the
-- `metadata` labels of its KnowledgeBase source. It is copied onto each chunk (not joined from
-- documents) so that a filtered vector query keeps the filter inside the HNSW scan, where
-- pgvector 0.8's iterative scan goes on until it has k rows that pass it.
-- `page` is the 1-based page a chunk starts on in a paged document (PDF), 0 otherwise;
-- `anchor` is the fragment id of the chunk's section, for `uri#anchor` links.

ALTER TABLE documents ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';
ALTER TABLE chunks ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';
ALTER TABLE chunks ADD COLUMN page integer NOT NULL DEFAULT 0 CHECK (page >= 0);
ALTER TABLE chunks ADD COLUMN anchor text NOT NULL DEFAULT '';

CREATE INDEX chunks_metadata_idx ON chunks USING gin (metadata jsonb_path_ops);
CREATE INDEX chunks_embedding_512_idx ON chunks USING hnsw ((embedding::vector(512)) vector_cosine_ops) WHERE dim = 512;
CREATE INDEX chunks_embedding_256_idx ON chunks USING hnsw ((embedding::vector(256)) vector_cosine_ops) WHERE dim = 256;
CREATE INDEX chunks_embedding_128_idx ON chunks USING hnsw ((embedding::vector(128)) vector_cosine_ops) WHERE dim = 128;
