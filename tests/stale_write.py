"""Inject a lost update into the posting engine's first write: its guard must refuse it.

The first `write_effects` sent by `Pipeline.run` (the batch's last part) expects account versions
no row has (999), as if another writer had changed every account since the batch read them; later
writes go as they are. Returns the list the patch appends "write" to, once per write sent."""

from __future__ import annotations

from typing import Any

import pytest

from ledger_server import posting
from ledger_server.pipeline import Pipeline


def stale_first_write(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    original = Pipeline.run
    attempts: list[str] = []

    def stale_first(self: Any, calls: Any) -> Any:
        writes = [i for i, call in enumerate(calls) if call is not None and call[0] is posting.S["write_effects"]]
        if writes and not attempts:
            query, params = calls[writes[0]]
            old = params["a_old_versions"]
            stale = {**params, "a_old_versions": "{" + ",".join("999" for _ in old[1:-1].split(",")) + "}"}
            calls = [*calls[:writes[0]], (query, stale), *calls[writes[0] + 1:]]
        if writes:
            attempts.append("write")
        return original(self, calls)

    monkeypatch.setattr(Pipeline, "run", stale_first)
    return attempts
