"""Counts text in the embedding model's tokens, so chunk budgets mean what the model sees.

Loads only the Rust tokenizer (milliseconds), not transformers; falls back to a word estimate.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

TokenCounter = Callable[[str], int]

_WORDISH = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Word pieces and punctuation, scaled for sub-word splits: close to WordPiece on English."""
    return round(len(_WORDISH.findall(text)) * 1.15)


def load_token_counter(tokenizer_path: str) -> TokenCounter:
    """A counter backed by `<tokenizer_path>/tokenizer.json`, or the estimate if there is none."""
    if not tokenizer_path:
        log.info("token counter kind=estimate reason=no_tokenizer_path")
        return estimate_tokens
    path = Path(tokenizer_path) / "tokenizer.json"
    if not path.is_file():
        log.warning("token counter kind=estimate reason=missing_file path=%s", path)
        return estimate_tokens
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    # The model's own file pads and truncates to its input size; counting needs neither.
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    log.info("token counter kind=tokenizer path=%s", path)
    return count
