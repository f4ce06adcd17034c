"""The README's SDK quick-start runs as written against a real server (twice: it is idempotent)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

from ledger_server.server import LedgerServer
from tests.conftest import ADMIN_KEY

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Python SDK quick-start"


def quickstart_code() -> str:
    text = README.read_text()
    assert SECTION in text, f"README.md lost its {SECTION!r} section"
    found = re.search(r"```python\n(.*?)```", text[text.index(SECTION) :], re.S)
    assert found, "no ```python block in the quick-start section"
    return found.group(1)


def test_the_quickstart_runs_as_written(ledger_server: LedgerServer, tmp_path: pathlib.Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart_code())
    env = {**os.environ, "LEDGER_TARGET": ledger_server.target, "LEDGER_API_KEY": ADMIN_KEY}
    for run in (1, 2):
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert done.returncode == 0, (run, done.stderr)
        assert "refused: INSUFFICIENT_FUNDS" in done.stdout and "alice holds 8750 cents" in done.stdout
