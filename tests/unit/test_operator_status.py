"""Status conditions (metav1.Condition semantics) and when a KnowledgeBase is due for a sync."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from concierge_operator import status
from concierge_operator.reconcile import sync_due
from concierge_operator.status import is_true, set_condition

OLD = "2024-01-01T00:00:00Z"
NOW = "2024-06-01T12:00:00Z"


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status, "now", lambda: NOW)


def cond(type_: str, state: str, generation: int = 1, since: str = OLD) -> dict[str, Any]:
    return {
        "type": type_,
        "status": state,
        "reason": "Before",
        "message": "before",
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


def test_same_status_keeps_the_transition_time_and_updates_the_rest() -> None:
    (updated,) = set_condition([cond("Ready", "True")], "Ready", "True", "Searchable", "ok", 2)
    assert updated == {
        "type": "Ready",
        "status": "True",
        "reason": "Searchable",
        "message": "ok",
        "observedGeneration": 2,
        "lastTransitionTime": OLD,
    }


def test_flipped_status_moves_the_transition_time() -> None:
    (updated,) = set_condition([cond("Ready", "True")], "Ready", "False", "MissingReference", "gone", 1)
    assert (updated["status"], updated["lastTransitionTime"]) == ("False", NOW)


def test_a_new_condition_is_appended_with_the_current_time() -> None:
    conditions = set_condition([cond("Ready", "True")], "Synced", "True", "Synced", "2 documents", 1)
    assert [c["type"] for c in conditions] == ["Ready", "Synced"]
    assert conditions[1]["lastTransitionTime"] == NOW


def test_other_conditions_are_kept_as_they_are_and_in_order() -> None:
    before = [cond("Ready", "True"), cond("Synced", "True"), cond("Custom", "Unknown")]
    after = set_condition(before, "Synced", "False", "SyncFailed", "UNAVAILABLE", 3)
    assert [c["type"] for c in after] == ["Ready", "Synced", "Custom"]
    assert after[0] == before[0]
    assert after[2] == before[2]
    assert before[1] == cond("Synced", "True")  # the input list is not modified


def test_setting_the_same_condition_twice_builds_the_same_list() -> None:
    once = set_condition([], "Ready", "True", "Valid", "policy is valid", 1)
    assert set_condition(once, "Ready", "True", "Valid", "policy is valid", 1) == once


def test_is_true_without_generation_looks_at_status_only() -> None:
    conditions = [cond("Ready", "True", generation=1), cond("Synced", "False")]
    assert is_true(conditions, "Ready")
    assert not is_true(conditions, "Synced")
    assert not is_true(conditions, "Missing")
    assert not is_true([cond("Ready", "Unknown")], "Ready")


def test_is_true_with_generation_needs_that_generation_observed() -> None:
    conditions = [cond("Ready", "True", generation=1)]
    assert is_true(conditions, "Ready", 1)
    assert not is_true(conditions, "Ready", 2)


# --- sync_due ----------------------------------------------------------------------------

SYNCED_AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def kb_body(conditions: list[dict[str, Any]] | None, generation: int = 1, refresh: str = "1h") -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "faq", "generation": generation}, "spec": {"refreshInterval": refresh}}
    if conditions is not None:
        body["status"] = {"conditions": conditions, "lastSyncTime": SYNCED_AT.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return body


@pytest.mark.parametrize(
    "body",
    [
        kb_body(None),
        kb_body([cond("Ready", "True")]),
        kb_body([cond("Synced", "False")]),
        kb_body([cond("Synced", "True", generation=1)], generation=2),
    ],
    ids=["no-status", "no-synced-condition", "synced-false", "older-generation"],
)
def test_sync_is_due_until_the_current_generation_synced(body: dict[str, Any]) -> None:
    assert sync_due(body, at=SYNCED_AT + timedelta(seconds=1))


def test_sync_is_not_due_right_after_a_sync() -> None:
    body = kb_body([cond("Synced", "True")])
    assert not sync_due(body, at=SYNCED_AT + timedelta(seconds=1))
    assert not sync_due(body, at=SYNCED_AT + timedelta(minutes=59))


def test_sync_is_due_once_the_refresh_interval_passed() -> None:
    assert sync_due(kb_body([cond("Synced", "True")]), at=SYNCED_AT + timedelta(hours=1))
    assert sync_due(kb_body([cond("Synced", "True")], refresh="30m"), at=SYNCED_AT + timedelta(minutes=31))


def test_sync_is_due_when_the_last_sync_time_is_missing_or_unreadable() -> None:
    body = kb_body([cond("Synced", "True")])
    body["status"]["lastSyncTime"] = "yesterday"
    assert sync_due(body, at=SYNCED_AT)
    del body["status"]["lastSyncTime"]
    assert sync_due(body, at=SYNCED_AT)
