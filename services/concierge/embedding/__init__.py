"""The embedding service: one sentence-transformers model per process, served over gRPC.

Concurrent requests are micro-batched into one worker thread so the event loop never blocks.
"""
