#!/usr/bin/env bash
# Install whatever `make up` / `make test` need and is missing; quick when nothing is.
# Usage: scripts/setup.sh [python] [ui] [browser] [corpus] [cluster]
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
want() { [[ " $WHAT " == *" $1 "* ]]; }

need_debian() {  # need_debian <command or file> <package>
  { [ -e "$1" ] || command -v "$1" >/dev/null 2>&1; } && return 0
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian package $2"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2") >/dev/null
  else
    echo "setup: '$1' is missing; install it with: sudo apt-get install -y $2" >&2
    exit 1
  fi
}

dictionaries() {  # FreeDict dictionaries for searching English knowledge in other languages (optional)
  local missing=()
  for iso in deu fra spa ita nld por; do
    [ -e "/usr/share/dictd/freedict-$iso-eng.index" ] || missing+=("dict-freedict-$iso-eng")
  done
  [ ${#missing[@]} = 0 ] && return 0
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null
  else
    echo "setup: questions in other languages are searched untranslated; to translate them: sudo apt-get install -y ${missing[*]}" >&2
  fi
}

uv_bin() {
  if command -v uv >/dev/null 2>&1; then command -v uv; return; fi
  if [ -x "$HOME/.local/bin/uv" ]; then echo "$HOME/.local/bin/uv"; return; fi
  echo "setup: installing uv $UV_VERSION into ~/.local" >&2
  python3 -m pip install --quiet --user "uv==$UV_VERSION" >&2 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages "uv==$UV_VERSION" >&2
  echo "$HOME/.local/bin/uv"
}

setup_python() {
  # uv keeps every wheel (torch included) in ~/.cache/uv, so a fresh clone re-links, not re-downloads.
  local stamp=.venv/.concierge-synced
  if [ -f "$stamp" ] && [ "$stamp" -nt uv.lock ] && [ "$stamp" -nt pyproject.toml ]; then return; fi
  command -v python3.11 >/dev/null 2>&1 || { echo "setup: Python 3.11 is required (python3.11 not found)" >&2; exit 1; }
  "$(uv_bin)" sync --frozen --python python3.11
  touch "$stamp"
}

setup_ui() {
  command -v npm >/dev/null 2>&1 || { echo "setup: Node.js 20 and npm are required: sudo apt-get install -y nodejs npm" >&2; exit 1; }
  if [ ! -f frontend/node_modules/.package-lock.json ] || [ frontend/package-lock.json -nt frontend/node_modules/.package-lock.json ]; then
    (cd frontend && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if [ ! -f frontend/dist/index.html ] || [ -n "$(find frontend/src frontend/index.html frontend/vite.config.ts frontend/package.json -newer frontend/dist/index.html 2>/dev/null | head -n1)" ]; then
    (cd frontend && npm run --silent build)
  fi
}

WHAT="${*:-python ui}"
want python && setup_python && dictionaries
want ui && setup_ui
want browser && need_debian chromium chromium
# The Python 3.11 documentation: the corpus of the retrieval evaluation and the ingestion benchmark.
want corpus && need_debian /usr/share/doc/python3.11/html/index.html python3.11-doc
# etcd, kube-apiserver, kube-controller-manager, kubectl and helm, built from source once and cached.
want cluster && scripts/controlplane.sh >/dev/null
exit 0
