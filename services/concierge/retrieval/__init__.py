"""The retrieval service: ingests knowledge bases into Postgres/pgvector and searches them.

Pure steps (sources, convert, chunking, plan, fusion) are plain modules; ingest/search compose them.
"""
