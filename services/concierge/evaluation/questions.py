"""Evaluation questions: JSON Lines of {"id", "q", "pages", "kind"}, validated with line numbers.

`pages` are document keys relative to the corpus folder (e.g. `library/json.html`); an empty list
means the corpus does not answer the question and the right outcome is to abstain. The format of
`examples/acme/questions.jsonl` ({"question", "expected", "answer_contains"}) is read as well.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# The example help center's field names → ours.
ALIASES = {"question": "q", "expected": "pages"}


class Question(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    q: str = Field(min_length=1, description="The question as a user would ask it.")
    pages: tuple[str, ...] = Field(description="Gold document keys; empty when unanswerable.")
    kind: str = Field(default="single", min_length=1)
    answer_contains: tuple[str, ...] = Field(
        default=(), description="Phrases a right answer holds (answer evaluation only); empty: not checked."
    )

    @property
    def answerable(self) -> bool:
        return bool(self.pages)

    def expects(self, document: str) -> bool:
        """Whether `document` (a document key or source URI) is one of the gold pages."""
        return any(same_document(document, page) for page in self.pages)


def same_document(found: str, expected: str) -> bool:
    """A document key or source URI names the expected page: equal, or one is the other's path suffix.

    Retrieval reports keys relative to the source folder (`returns.md`) and citations carry URIs
    relative to the KnowledgeBase file (`docs/returns.md`), so either may hold the longer path.
    """
    found, expected = found.split("#", 1)[0].strip("/"), expected.split("#", 1)[0].strip("/")
    if not found or not expected:
        return False
    return found == expected or found.endswith("/" + expected) or expected.endswith("/" + found)


class QuestionFileError(Exception):
    """The question file cannot be used; the message names the line and the fix."""


def _normalised(row: Any, number: int) -> Any:
    """The row in our field names; a row without id gets `line-N`, an unanswerable one without kind `unanswerable`."""
    if not isinstance(row, dict):
        return row
    row = {ALIASES.get(key, key): value for key, value in row.items()}
    row.setdefault("id", f"line-{number}")
    if row.get("pages") == [] and "kind" not in row:
        row["kind"] = "unanswerable"
    return row


def load_questions(path: Path) -> list[Question]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise QuestionFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    questions: list[Question] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            question = Question.model_validate(_normalised(json.loads(line), number))
        except json.JSONDecodeError as exc:
            raise QuestionFileError(f"{path}:{number}: not JSON ({exc.msg} at column {exc.colno})") from exc
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
            raise QuestionFileError(
                f'{path}:{number}: {problems} (expected {{"id": ..., "q": ..., "pages": [...], "kind": ...}} '
                'or {"question": ..., "expected": [...], "answer_contains": [...]})'
            ) from exc
        if question.id in seen:
            raise QuestionFileError(f"{path}:{number}: id {question.id!r} appears twice; ids must be unique")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise QuestionFileError(f"{path} holds no questions")
    return questions
