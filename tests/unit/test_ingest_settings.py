"""Sync concurrency settings: running syncs must always leave pooled connections to searches."""

from __future__ import annotations

import pytest

from concierge.retrieval.config import Settings, load_settings

URL = "postgresql://concierge@db/concierge"


def test_by_default_two_syncs_run_at_once_on_a_pool_of_eight() -> None:
    settings = Settings(database_url=URL, tokenizer_path="")
    assert (settings.sync_concurrency, settings.database_pool_size) == (2, 8)


def test_sync_concurrency_below_the_pool_size_is_accepted() -> None:
    settings = Settings(database_url=URL, tokenizer_path="", database_pool_size=3, sync_concurrency=2)
    assert settings.sync_concurrency == 2


@pytest.mark.parametrize(("pool_size", "concurrency"), [(2, 2), (4, 8)])
def test_sync_concurrency_that_could_take_the_whole_pool_is_refused(pool_size: int, concurrency: int) -> None:
    with pytest.raises(ValueError, match=rf"CONCIERGE_SYNC_CONCURRENCY \({concurrency}\) must be below"):
        Settings(database_url=URL, tokenizer_path="", database_pool_size=pool_size, sync_concurrency=concurrency)


def test_the_start_up_error_names_both_variables_and_how_to_fix_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONCIERGE_DATABASE_URL", URL)
    monkeypatch.setenv("CONCIERGE_TOKENIZER_PATH", "/models/minilm")
    monkeypatch.setenv("CONCIERGE_DATABASE_POOL_SIZE", "2")
    monkeypatch.setenv("CONCIERGE_SYNC_CONCURRENCY", "2")
    with pytest.raises(SystemExit) as exit_:
        load_settings()
    message = str(exit_.value)
    assert "CONCIERGE_SYNC_CONCURRENCY (2) must be below CONCIERGE_DATABASE_POOL_SIZE (2)" in message
    assert "lower the first or raise the second" in message
    assert "CONCIERGE_:" not in message  # a rule across fields has no single field to name
