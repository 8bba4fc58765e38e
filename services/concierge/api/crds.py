"""Build CustomResourceDefinitions (apiextensions.k8s.io/v1) from the resource models.

Pydantic's JSON Schema is turned into a Kubernetes structural schema: references inlined,
optional fields unwrapped, defaults (also of default factories) kept so the API server fills them.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema, to_jsonable_python

from concierge.api.resources import (
    API_GROUP,
    RESOURCE_TYPES,
    EscalationPolicy,
    EscalationPolicySpec,
    KnowledgeBase,
    KnowledgeBaseSpec,
    KnowledgeBaseStatus,
    Resource,
    SimpleStatus,
    SupportAgent,
    SupportAgentSpec,
    SupportAgentStatus,
)

SCHEMAS: dict[type[Resource], tuple[type[BaseModel], type[BaseModel]]] = {
    KnowledgeBase: (KnowledgeBaseSpec, KnowledgeBaseStatus),
    SupportAgent: (SupportAgentSpec, SupportAgentStatus),
    EscalationPolicy: (EscalationPolicySpec, SimpleStatus),
}
_DROP = {"title", "additionalProperties", "$defs"}

PRINTER_COLUMNS: dict[type[Resource], list[dict[str, Any]]] = {
    KnowledgeBase: [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Documents", "type": "integer", "jsonPath": ".status.documentCount"},
        {"name": "Chunks", "type": "integer", "jsonPath": ".status.chunkCount"},
        {"name": "Last Sync", "type": "date", "jsonPath": ".status.lastSyncTime"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    SupportAgent: [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Provider", "type": "string", "jsonPath": ".spec.model.provider"},
        {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    EscalationPolicy: [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Handoff", "type": "string", "jsonPath": ".spec.handoff.type"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
}


class _WithFactoryDefaults(GenerateJsonSchema):
    """Also emit defaults that come from `default_factory`, so `kubectl get -o yaml` shows them."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().default_schema(schema)
        value = factory()  # type: ignore[call-arg]
        inner = self.generate_inner(schema["schema"])
        # Unset optional fields are absent, not null: a default must validate against its own schema.
        dumped = (
            value.model_dump(mode="json", by_alias=True, exclude_none=True) if isinstance(value, BaseModel) else value
        )
        return {**inner, "default": to_jsonable_python(dumped)}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        return _resolve(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            merged = {**options[0], **{k: v for k, v in node.items() if k != "anyOf"}}
            if merged.get("default", 0) is None:
                del merged["default"]
            return _resolve(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP and not (key == "additionalProperties" and isinstance(value, dict)):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out[key.replace("exclusiveM", "m")] = value
            out[key] = True
        elif key == "properties":
            out[key] = {name: _resolve(prop, defs) for name, prop in value.items()}
        else:
            out[key] = _resolve(value, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("default", 0) is None:
        del out["default"]
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model (spec or status)."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_WithFactoryDefaults)
    resolved: dict[str, Any] = _resolve(raw, raw.get("$defs", {}))
    return resolved


def crd(resource: type[Resource]) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource type."""
    spec_type, status_type = SCHEMAS[resource]
    kind = resource.KIND
    schema = {
        "type": "object",
        "description": (spec_type.__doc__ or kind).strip().splitlines()[0],
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": openapi_schema(spec_type),
            "status": openapi_schema(status_type),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.PLURAL}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": resource.PLURAL,
                "singular": kind.lower(),
                "shortNames": list(resource.SHORT_NAMES),
                "categories": ["concierge"],
            },
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS[resource],
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name → CRD for every resource type."""
    return {f"{API_GROUP}_{r.PLURAL}.yaml": crd(r) for r in RESOURCE_TYPES}


def render(definition: dict[str, Any]) -> str:
    """The YAML text written to crds/ (stable, so a test can compare it byte for byte)."""
    header = "# Generated by `concierge crds` from services/concierge/api; do not edit.\n"
    return header + yaml.safe_dump(definition, sort_keys=False, width=100)


def render_for_chart(definition: dict[str, Any]) -> str:
    """The YAML text of the concierge-crds chart's copy: the same CRD, kept when the release goes.

    Helm deletes what it installed on uninstall; deleting a CRD would delete every custom resource.
    """
    metadata = {**definition["metadata"], "annotations": {"helm.sh/resource-policy": "keep"}}
    return render({**definition, "metadata": metadata})
