"""Generate the Python gRPC stubs in services/concierge/v1 from proto/concierge/v1.

Run `python scripts/gen_proto.py [OUT_ROOT]`; tests call it with a temporary root to
prove the committed stubs are current.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"


def generate(out_root: Path) -> list[Path]:
    """Write *_pb2.py, *_pb2_grpc.py and their .pyi stubs under out_root/concierge/v1."""
    out_dir = out_root / "concierge" / "v1"
    out_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "concierge" / "v1").glob("*.proto"))
    # The mypy plugins live next to the interpreter, which need not be on PATH (make, CI).
    bin_dir = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"--mypy_out={out_root}",
        f"--mypy_grpc_out={out_root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed for {protos}")
    init = out_dir / "__init__.py"
    init.write_text('"""Generated gRPC stubs for package concierge.v1 (scripts/gen_proto.py)."""\n')
    return sorted(out_dir.iterdir())


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "services")
