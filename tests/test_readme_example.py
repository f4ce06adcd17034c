"""The README's worked example runs as written against a real server."""

from __future__ import annotations

import pathlib
import re

import pytest

from ledger_server.server import LedgerServer
from tests.conftest import ADMIN_KEY

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_worked_example_runs(ledger_server: LedgerServer, monkeypatch: pytest.MonkeyPatch) -> None:
    section = README.read_text().split("### Worked example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    source = code.group(1).replace("127.0.0.1:50051", ledger_server.target)
    monkeypatch.setenv("LEDGER_API_KEY", ADMIN_KEY)
    exec(compile(source, "README.md", "exec"), {})
