"""Evaluation questions: JSON Lines of {"id", "q", "pages", "kind"}, validated with line numbers.

`pages` are document keys relative to the corpus folder (e.g. `library/json.html`); an empty list
means the corpus does not answer the question and the right outcome is to abstain.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Question(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    q: str = Field(min_length=1, description="The question as a user would ask it.")
    pages: tuple[str, ...] = Field(description="Gold document keys; empty when unanswerable.")
    kind: str = Field(default="single", min_length=1)

    @property
    def answerable(self) -> bool:
        return bool(self.pages)


class QuestionFileError(Exception):
    """The question file cannot be used; the message names the line and the fix."""


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
            question = Question.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise QuestionFileError(f"{path}:{number}: not JSON ({exc.msg} at column {exc.colno})") from exc
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
            raise QuestionFileError(
                f'{path}:{number}: {problems} (expected {{"id": ..., "q": ..., "pages": [...], "kind": ...}})'
            ) from exc
        if question.id in seen:
            raise QuestionFileError(f"{path}:{number}: id {question.id!r} appears twice; ids must be unique")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise QuestionFileError(f"{path} holds no questions")
    return questions
