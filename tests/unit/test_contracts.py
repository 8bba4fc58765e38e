"""Generated artefacts stay in step with their sources: gRPC stubs and CRDs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from concierge.api.crds import all_crds, render, render_for_chart

ROOT = Path(__file__).resolve().parents[2]


def _gen_proto_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_grpc_stubs_match_the_proto_files(tmp_path: Path) -> None:
    generated = _gen_proto_module().generate(tmp_path)
    committed = ROOT / "services" / "concierge" / "v1"
    names = sorted(p.name for p in generated)
    assert names == sorted(p.name for p in committed.iterdir() if p.is_file() and p.name != "py.typed")
    stale = [n for n in names if (tmp_path / "concierge" / "v1" / n).read_bytes() != (committed / n).read_bytes()]
    assert not stale, f"stubs out of date, run `make proto`: {stale}"


def test_committed_crds_match_the_resource_models() -> None:
    stale = [name for name, d in all_crds().items() if (ROOT / "crds" / name).read_text() != render(d)]
    assert not stale, f"crds/ out of date, run `make crds`: {stale}"


def test_crds_chart_ships_the_generated_crds_kept_on_uninstall() -> None:
    templates = ROOT / "charts" / "concierge-crds" / "templates"
    shipped = sorted(p.name for p in templates.glob("*.yaml"))
    assert shipped == sorted(all_crds()), f"{templates} holds {shipped}; run `make crds`"
    stale = [name for name, d in all_crds().items() if (templates / name).read_text() != render_for_chart(d)]
    assert not stale, f"the concierge-crds chart's copies are out of date, run `make crds`: {stale}"
    for name in shipped:
        kept = yaml.safe_load((templates / name).read_text())
        assert kept["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}, name
        assert kept["spec"] == yaml.safe_load((ROOT / "crds" / name).read_text())["spec"], name


def test_crds_are_structural_with_short_names_and_printer_columns() -> None:
    crds = {d["spec"]["names"]["kind"]: d for d in all_crds().values()}
    assert {k: d["spec"]["names"]["shortNames"] for k, d in crds.items()} == {
        "KnowledgeBase": ["kb"],
        "SupportAgent": ["sagent"],
        "EscalationPolicy": ["escpol"],
    }
    for definition in crds.values():
        version = definition["spec"]["versions"][0]
        text = yaml.safe_dump(version["schema"])
        for forbidden in ("$ref", "anyOf", "$defs", "const:", "additionalProperties: false"):
            assert forbidden not in text, f"{definition['metadata']['name']}: {forbidden} is not structural"
        assert version["subresources"] == {"status": {}}
        assert any(c["name"] == "Phase" for c in version["additionalPrinterColumns"])


def test_crd_schema_carries_defaults_and_cel_rules() -> None:
    agent = all_crds()["concierge.dev_supportagents.yaml"]
    spec = agent["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["model"]["properties"]["provider"]["default"] == "extractive"
    assert spec["properties"]["scaling"]["default"]["maxReplicas"] == 3
    rules = [r["rule"] for r in spec["properties"]["scaling"]["x-kubernetes-validations"]]
    assert rules == ["self.minReplicas <= self.maxReplicas"]
    assert set(spec["required"]) == {"displayName"}


def _defaults(node: object) -> list[object]:
    if isinstance(node, list):
        return [d for item in node for d in _defaults(item)]
    if not isinstance(node, dict):
        return []
    found = [node["default"]] if "default" in node else []
    return found + [d for key, value in node.items() if key != "default" for d in _defaults(value)]


def _has_null(value: object) -> bool:
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return value is None


def test_crd_defaults_never_hold_null_which_the_api_server_rejects() -> None:
    for name, definition in all_crds().items():
        defaults = _defaults(definition["spec"]["versions"][0]["schema"])
        assert defaults, name
        assert not [d for d in defaults if _has_null(d)], f"{name}: a default holds null"
