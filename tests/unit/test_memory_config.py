"""Memory service configuration: a missing database URL stops start-up with a message saying what to set."""

from __future__ import annotations

import pytest

from concierge.memory.config import load_settings


def test_missing_database_url_names_the_variable_and_an_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONCIERGE_DATABASE_URL", raising=False)
    with pytest.raises(SystemExit) as caught:
        load_settings()
    assert "CONCIERGE_DATABASE_URL is not set; set it to the PostgreSQL URL" in str(caught.value)


def test_role_defaults_to_the_row_level_security_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCIERGE_DATABASE_URL", "postgresql://db/concierge")
    monkeypatch.delenv("CONCIERGE_DATABASE_ROLE", raising=False)
    settings = load_settings()
    assert settings.database_role == "concierge_app"
    assert settings.max_message_chars == 20_000
