"""Structured key=value logging for every process; never logs secrets or document text."""

from __future__ import annotations

import logging
import os
import sys


def configure(service: str) -> None:
    """Log to stderr as `time level service logger message` with key=value fields in the message."""
    level = os.environ.get("CONCIERGE_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s level=%(levelname)s service={service} logger=%(name)s %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S",
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "sentence_transformers", "transformers", "urllib3", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
