"""The laptop runner's pieces: rendered resources, and a service that cannot start explains why."""

from __future__ import annotations

from pathlib import Path

import pytest

from concierge.api.loader import dump, load_paths
from concierge.local.processes import ServiceFailed, start_service
from concierge.local.up import write_resources

ROOT = Path(__file__).resolve().parents[2]


def test_rendered_resources_reload_to_the_same_specs_with_defaults_filled(tmp_path: Path) -> None:
    original = load_paths([ROOT / "examples" / "acme"])
    rendered = load_paths([write_resources(original, tmp_path)])
    assert [dump(i.resource) for i in rendered.items] == [dump(i.resource) for i in original.items]
    text = (tmp_path / "resources.yaml").read_text()
    assert "maxReplicas: 5" in text
    assert "historyTurns: 20" in text, "defaults are written out, as the operator's ConfigMap will be"


def test_service_without_its_database_fails_fast_and_says_which_setting_is_missing(tmp_path: Path) -> None:
    service = start_service("memory", env={"CONCIERGE_DATABASE_URL": ""}, log_dir=tmp_path)
    try:
        with pytest.raises(ServiceFailed) as failed:
            service.wait_ready(timeout=60)
    finally:
        service.stop()
    assert "memory exited with code" in str(failed.value)
    assert "CONCIERGE_DATABASE_URL" in str(failed.value)
