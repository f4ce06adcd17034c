"""The committed stubs (generated/python) and the ones the SDK imports match protos/ exactly.

Regenerates into a temporary directory with scripts/generate_protos.py --out and compares every
file, ignoring only the lines that name the generator's version (protoc / grpcio-tools releases).
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

from ledger.v1 import ledger_pb2

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "generated" / "python"
VERSION_LINES = (
    re.compile(r"^# Protobuf Python Version: .*$", re.M),
    re.compile(r"^GRPC_GENERATED_VERSION = .*$", re.M),
    # _runtime_version.ValidateProtobufRuntimeVersion(domain, major, minor, patch, suffix, file)
    re.compile(
        r"(ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,)\s*\d+,\s*\d+,\s*\d+,\s*'[^']*',"
    ),
)


def normalized(text: str) -> str:
    for pattern in VERSION_LINES:
        text = pattern.sub(lambda m: m.group(1) if m.groups() else "<generator version>", text)
    return text


def files_under(root: pathlib.Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): normalized(path.read_text())
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_committed_stubs_match_a_fresh_generation(tmp_path: pathlib.Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_protos.py"), "--out", str(tmp_path)],
        check=True,
        timeout=120,
    )
    fresh, committed = files_under(tmp_path), files_under(COMMITTED)
    assert sorted(fresh) == sorted(committed), "stub files added or missing: run scripts/generate_protos.py"
    drifted = [name for name in fresh if fresh[name] != committed[name]]
    assert not drifted, f"stubs drifted from protos/: {drifted}; run scripts/generate_protos.py"


def test_the_sdk_imports_the_committed_stubs() -> None:
    imported = pathlib.Path(ledger_pb2.__file__).resolve()
    assert (
        imported.is_relative_to(COMMITTED.resolve())
        or imported.read_text() == (COMMITTED / "ledger" / "v1" / "ledger_pb2.py").read_text()
    ), f"the installed stubs at {imported} are not the committed ones"


def test_version_normalization_only_touches_version_lines() -> None:
    sample = (
        "# Protobuf Python Version: 7.35.1\nx = 1\nGRPC_GENERATED_VERSION = '1.85.1'\n"
        "_runtime_version.ValidateProtobufRuntimeVersion(\n    _runtime_version.Domain.PUBLIC,\n"
        "    7,\n    35,\n    1,\n    '',\n    'ledger/v1/ledger.proto'\n)\n"
    )
    other = sample.replace("7.35.1", "6.0.0").replace("1.85.1", "1.70.0").replace("35,", "0,")
    assert normalized(sample) == normalized(other)
    assert normalized(sample.replace("x = 1", "x = 2")) != normalized(sample)
