"""Shared fixtures: a real PostgreSQL (never mocked), fresh databases, in-process and real servers.

PostgreSQL comes from LEDGER_TEST_DATABASE_URL, else the local service on 127.0.0.1:5432, else an
embedded one (pgserver) started for the session. If none can be had the tests fail loudly.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import psycopg
import pytest

from ledger.v1 import ledger_pb2_grpc
from ledger_server.access.callers import provision_admin_key
from ledger_server.migrate import migrate
from ledger_server.server import LedgerServer, ServerConfig

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# The admin key every test server is provisioned with (LEDGER_BOOTSTRAP_ADMIN_KEY); tests only.
ADMIN_KEY = "test-admin-key-" + uuid.uuid4().hex


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds `authorization: Bearer <key>` to every call of a channel."""

    def __init__(self, key: str) -> None:
        self._metadata = ("authorization", f"Bearer {key}")

    def _with_key(self, details: Any) -> Any:
        metadata = [*(details.metadata or ()), self._metadata]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_key(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_key(details), request)


class _Details(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, details: Any, metadata: Any) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


def open_channel(target: str, key: str | None = ADMIN_KEY,
                 options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    """An insecure channel to a test server that authenticates with `key` (None: anonymous)."""
    channel = grpc.insecure_channel(target, options=list(options))
    if key is None:
        return channel
    return grpc.intercept_channel(channel, _BearerToken(key))


# Lines the run prints at its end (fault-injection and durability summaries), passing or not.
RUN_SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RUN_SUMMARY:
        terminalreporter.section("fault injection and durability summary")
        for line in RUN_SUMMARY:
            terminalreporter.write_line(line)


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A URL of a maintenance database on a real PostgreSQL server."""
    url = os.environ.get("LEDGER_TEST_DATABASE_URL")
    if url:
        if not _reachable(url):
            pytest.fail(f"LEDGER_TEST_DATABASE_URL={url} is not reachable")
        yield url
        return
    if _reachable(LOCAL_URL):
        yield LOCAL_URL
        return
    from ledger_server.embedded_postgres import EmbeddedPostgres

    try:
        embedded = EmbeddedPostgres(pathlib.Path(tempfile.mkdtemp(prefix="ledger-test-pg-")))
    except Exception as error:  # pragma: no cover - depends on the machine
        pytest.fail(f"no PostgreSQL: none configured, none on 127.0.0.1:5432, embedded failed: {error}")
    yield embedded.database_url("postgres")
    embedded.stop()


def _with_database(admin_url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def new_database(pg_admin_url: str) -> Iterator[Callable[[], str]]:
    """A factory of fresh, migrated databases; all are dropped at the end of the session."""
    created: list[str] = []

    def make() -> str:
        name = f"ledger_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        url = _with_database(pg_admin_url, name)
        migrate(url)
        return url

    yield make
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def database_url(new_database: Callable[[], str]) -> str:
    return new_database()


def start_ledger_server(database_url: str, **options: Any) -> LedgerServer:
    """An in-process server on a free port whose admin key is ADMIN_KEY; `options`: ServerConfig's."""
    provision_admin_key(database_url, ADMIN_KEY)
    return LedgerServer(ServerConfig(listen="127.0.0.1:0", database_url=database_url, **options)).start()


@pytest.fixture(scope="module")
def ledger_server(request: pytest.FixtureRequest, database_url: str) -> Iterator[LedgerServer]:
    """The server as deployed (its writer in a child process); a module parametrizes it indirectly
    with "thread" to run the same tests against the in-thread writer too."""
    writer = getattr(request, "param", "process")
    assert writer in ("process", "thread"), writer
    server = start_ledger_server(database_url, hold_expiry_interval_s=0.2, writer_process=writer == "process")
    yield server
    server.stop(grace_s=5)


@pytest.fixture(scope="module")
def channel(ledger_server: LedgerServer) -> Iterator[grpc.Channel]:
    with open_channel(ledger_server.target) as chan:
        yield chan


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> ledger_pb2_grpc.LedgerStub:
    return ledger_pb2_grpc.LedgerStub(channel)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`ledger-server` as a real child process, for crash and restart tests."""

    def __init__(self, database_url: str, port: int | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.port = port or free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> ServerProcess:
        env = {**os.environ, "LEDGER_DATABASE_URL": self.database_url, "LEDGER_LISTEN": self.target,
               "LEDGER_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY, **self.extra_env}
        # The log goes to a file, never a pipe nobody reads (a full pipe would block the server).
        self.log_path = pathlib.Path(tempfile.mkstemp(prefix="ledger-server-", suffix=".log")[1])
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ledger_server.main"], env=env, cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=log,
            )
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as chan:
            while True:
                try:
                    grpc.channel_ready_future(chan).result(timeout=0.5)
                    return self
                except grpc.FutureTimeoutError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        err = self.log_path.read_text(errors="replace")
                        raise RuntimeError(f"ledger-server did not start: {err[-2000:]}") from None

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup; whatever was acknowledged must survive."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout=30)


@pytest.fixture
def server_process(database_url: str) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def make(url: str | None = None, **kwargs: Any) -> ServerProcess:
        proc = ServerProcess(url or database_url, **kwargs)
        started.append(proc)
        return proc

    yield make
    for proc in started:
        if proc.process is not None and proc.process.poll() is None:
            proc.process.kill()
            proc.process.wait(timeout=10)


def kill_one_process_and_expect_the_unit_to_stop(unit: subprocess.Popen[bytes], processes: int) -> None:
    """For a `--processes N` unit: it runs N server processes; one killed (-9) makes the parent
    stop the others and exit 1, and none outlives it."""
    import psutil

    from benchmarks.services import server_processes

    children = server_processes(unit.pid)
    assert len(children) == processes
    children[0].kill()
    assert unit.wait(timeout=30) == 1
    _, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, "a server process outlived its unit"
