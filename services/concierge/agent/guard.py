"""The output guard: an answer never repeats the agent's instructions or a secret-looking token
from them, whatever a document, an attachment or a customer talked the model into.

Text is released word by word (the word being written is held back), so a leaked token is
caught before any of it reaches the customer, and a copied passage of the instructions after
at most a few words. A tripped guard replaces the rest of the answer with a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Callable

REFUSAL = "I can't share that. I'm happy to help with questions about our products and services."
SHINGLE_WORDS = 8
_WORD = re.compile(r"[\w'-]+")
# Identifiers, codes and keys: 8+ characters mixing letters and digits (dashes/underscores allowed).
_SECRET = re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{8,}\b")


def words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def shingles(tokens: list[str], size: int = SHINGLE_WORDS) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


def secret_tokens(text: str) -> set[str]:
    return {m.group(0).casefold() for m in _SECRET.finditer(text)}


class OutputGuard:
    """Releases streamed text that leaks nothing of `instructions`.

    `allowed()` returns text the answer may quote freely (the customer's words, the passages
    found this turn): a phrase or token also found there is not a leak.
    """

    def __init__(self, instructions: str, allowed: Callable[[], str]) -> None:
        self._shingles = shingles(words(instructions))
        self._secrets = secret_tokens(instructions)
        self._allowed = allowed
        self.released = ""
        # The last words released: a copied passage may start in them and go on in new text.
        self._tail = ""
        self._pending = ""
        self.tripped = False

    def _leaks(self, text: str) -> bool:
        found_secrets = secret_tokens(text) & self._secrets
        found_shingles = shingles(words(text)) & self._shingles
        if not found_secrets and not found_shingles:
            return False
        allowed = self._allowed()
        if found_secrets - secret_tokens(allowed):
            return True
        return bool(found_shingles - shingles(words(allowed)))

    def feed(self, delta: str) -> str:
        """The part of the answer so far that is safe to send now ("" once tripped)."""
        if self.tripped:
            return ""
        self._pending += delta
        # Released text was checked already and ends at whitespace: only shingles and tokens that
        # reach into the new text are left to check (linear in the answer, not quadratic).
        if self._leaks(f"{self._tail} {self._pending}"):
            self.tripped = True
            return ""
        cut = max(self._pending.rfind(" "), self._pending.rfind("\n"))
        if cut < 0:
            return ""
        release, self._pending = self._pending[: cut + 1], self._pending[cut + 1 :]
        self.released += release
        self._tail = " ".join(f"{self._tail} {release}".split()[-(SHINGLE_WORDS - 1) :])
        return release

    def finish(self) -> str:
        """The held-back rest of a clean answer, or the refusal when the guard tripped."""
        if not self.tripped and self._leaks(f"{self._tail} {self._pending}"):
            self.tripped = True
        if self.tripped:
            return REFUSAL
        release, self._pending = self._pending, ""
        self.released += release
        return release

    @property
    def answer(self) -> str:
        """What the customer ends up with: the clean answer, or the refusal."""
        return REFUSAL if self.tripped else self.released
