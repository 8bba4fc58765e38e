"""Agent service configuration: missing addresses and a missing resource folder are named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from concierge.agent.config import load_settings


def test_every_missing_variable_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONCIERGE_RETRIEVAL_ADDRESS", "CONCIERGE_MEMORY_ADDRESS", "CONCIERGE_RESOURCES_DIR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as caught:
        load_settings()
    message = str(caught.value)
    assert "CONCIERGE_RETRIEVAL_ADDRESS is not set" in message
    assert "CONCIERGE_MEMORY_ADDRESS is not set" in message
    assert "CONCIERGE_RESOURCES_DIR is not set" in message


def test_resources_dir_must_be_a_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONCIERGE_RETRIEVAL_ADDRESS", "retrieval:50051")
    monkeypatch.setenv("CONCIERGE_MEMORY_ADDRESS", "memory:50051")
    monkeypatch.setenv("CONCIERGE_RESOURCES_DIR", str(tmp_path / "missing"))
    with pytest.raises(SystemExit, match="is not a folder"):
        load_settings()
    monkeypatch.setenv("CONCIERGE_RESOURCES_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.extractive_min_score == 0.3
