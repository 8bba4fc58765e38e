"""Read resource YAML from files and folders, with errors that name file, field and fix.

`concierge up`, the services' resource directory and the tests all load through here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from concierge.api.resources import KINDS, EscalationPolicy, KnowledgeBase, Resource, SupportAgent

R = TypeVar("R", bound=Resource)


@dataclass(frozen=True)
class LoadedResource:
    resource: Resource
    path: Path
    # 1-based index of the YAML document inside the file.
    document: int


class ResourceError(ValueError):
    """One or more resource files are invalid; str() lists every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def field_path(loc: Iterable[int | str]) -> str:
    """Pydantic's error location as `spec.sources[0].path`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def field_errors(err: ValidationError) -> list[tuple[str, str]]:
    """(field path, what is wrong and the offending value) for each error: every API and CLI reports these."""
    out = []
    for e in err.errors():
        loc = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-after"))]
        got = e.get("input")
        got_text = "" if isinstance(got, dict | list) or got is None else f" (got: {got!r})"
        out.append((field_path(loc), e["msg"].removeprefix("Value error, ") + got_text))
    return out


def describe_errors(err: ValidationError) -> str:
    """All errors on one line: `field: problem; field: problem`."""
    return "; ".join(f"{field}: {problem}" for field, problem in field_errors(err))


def describe_validation_error(where: str, err: ValidationError) -> list[str]:
    """One line per error: `file (document N): field.path: what is wrong (got: value)`."""
    return [f"{where}: {field}: {problem}" for field, problem in field_errors(err)]


def parse_documents(path: Path, text: str) -> tuple[list[LoadedResource], list[str]]:
    """Validate every YAML document of one file; returns resources and problems."""
    resources: list[LoadedResource] = []
    problems: list[str] = []
    try:
        documents = [d for d in yaml.safe_load_all(text)]
    except yaml.YAMLError as err:
        return [], [f"{path}: not valid YAML: {err}"]
    for index, doc in enumerate(documents, start=1):
        if doc is None:
            continue
        where = f"{path} (document {index})"
        if not isinstance(doc, dict):
            problems.append(
                f"{where}: expected a mapping with apiVersion, kind, metadata and spec; got {type(doc).__name__}"
            )
            continue
        kind = doc.get("kind")
        if kind not in KINDS:
            problems.append(f"{where}: kind: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
            continue
        try:
            resource = KINDS[str(kind)].model_validate(doc)
        except ValidationError as err:
            problems.extend(describe_validation_error(where, err))
            continue
        resources.append(LoadedResource(resource, path, index))
    return resources, problems


def reference_problems(loaded: list[LoadedResource]) -> list[str]:
    """Agents may only reference KnowledgeBases and EscalationPolicies of their own namespace."""
    known = {(type(item.resource).__name__, item.resource.key) for item in loaded}
    problems = []
    for item in loaded:
        res = item.resource
        if not isinstance(res, SupportAgent):
            continue
        where = f"{item.path} (document {item.document})"
        for i, kb in enumerate(res.spec.knowledge_bases):
            if ("KnowledgeBase", f"{res.namespace}/{kb}") not in known:
                problems.append(
                    f"{where}: spec.knowledgeBases[{i}]: KnowledgeBase {kb!r} not found in namespace "
                    f"{res.namespace!r}; define it in the same folder and namespace"
                )
        policy = res.spec.escalation_policy
        if policy and ("EscalationPolicy", f"{res.namespace}/{policy}") not in known:
            problems.append(
                f"{where}: spec.escalationPolicy: EscalationPolicy {policy!r} not found in namespace {res.namespace!r}"
            )
    seen: dict[tuple[str, str], LoadedResource] = {}
    for item in loaded:
        ident = (type(item.resource).__name__, item.resource.key)
        if ident in seen:
            problems.append(f"{item.path}: {ident[0]} {ident[1]} is also defined in {seen[ident].path}")
        seen[ident] = item
    return problems


@dataclass
class ResourceSet:
    """Every resource of a folder, validated together."""

    items: list[LoadedResource] = field(default_factory=list)

    def of(self, kind: type[R]) -> list[R]:
        return [i.resource for i in self.items if isinstance(i.resource, kind)]

    def path_of(self, resource: Resource) -> Path:
        return next(i.path for i in self.items if i.resource is resource)

    def get(self, kind: type[R], namespace: str, name: str) -> R | None:
        return next((r for r in self.of(kind) if r.namespace == namespace and r.name == name), None)

    @property
    def knowledge_bases(self) -> list[KnowledgeBase]:
        return self.of(KnowledgeBase)

    @property
    def agents(self) -> list[SupportAgent]:
        return self.of(SupportAgent)

    @property
    def policies(self) -> list[EscalationPolicy]:
        return self.of(EscalationPolicy)

    @property
    def namespaces(self) -> list[str]:
        return sorted({i.resource.namespace for i in self.items})


def load_paths(paths: Iterable[Path]) -> ResourceSet:
    """Load YAML files (folders: every *.yaml/*.yml directly inside); raise ResourceError on any problem."""
    files: list[Path] = []
    problems: list[str] = []
    for p in paths:
        if p.is_dir():
            found = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
            if not found:
                problems.append(f"{p}: no *.yaml files in this folder; pass a folder that holds resource YAML")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    loaded: list[LoadedResource] = []
    for f in files:
        items, errs = parse_documents(f, f.read_text(encoding="utf-8"))
        loaded.extend(items)
        problems.extend(errs)
    if not problems:
        problems.extend(reference_problems(loaded))
    if problems:
        raise ResourceError(problems)
    return ResourceSet(loaded)


def dump(resource: Resource) -> dict[str, Any]:
    """The resource as Kubernetes JSON (camelCase, defaults filled in, no nulls)."""
    return resource.model_dump(mode="json", by_alias=True, exclude_none=True)
