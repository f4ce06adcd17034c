"""Regenerate the committed protobuf/gRPC stubs in generated/python from protos/.

Run: python scripts/generate_protos.py [--out DIR]
The stubs are committed (so installs need no code generation) and never edited by hand;
tests/test_generated_stubs.py fails when they drift from protos/.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import grpc_tools
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "generated" / "python"


def generate(out_dir: pathlib.Path) -> None:
    """Compile every .proto under protos/ into out_dir (package folders and __init__ files)."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in {pathlib.Path(p).parent for p in protos}:
        for level in range(1, len(package.parts) + 1):
            init = out_dir.joinpath(*package.parts[:level], "__init__.py")
            init.write_text('"""Generated from protos/ by scripts/generate_protos.py; do not edit."""\n')
        (out_dir / package / "py.typed").write_text("")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    generate(parser.parse_args().out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
