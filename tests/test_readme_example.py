"""The README's worked example runs as written against a real server."""

from __future__ import annotations

import pathlib
import re

from ledger_server.server import LedgerServer

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_worked_example_runs(ledger_server: LedgerServer, capsys: object) -> None:
    section = README.read_text().split("### Worked example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    source = code.group(1).replace("127.0.0.1:50051", ledger_server.target)
    exec(compile(source, "README.md", "exec"), {})
