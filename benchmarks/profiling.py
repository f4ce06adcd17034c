"""Where the server's time goes: py-spy stacks plus per-thread CPU from /proc, under load.

py-spy samples the Python stacks of the busy threads (idle ones, blocked on a lock or a socket,
are left out) and names each by its OS thread id; /proc/<pid>/task/<tid> gives each thread's CPU
seconds, including gRPC's C threads that have no Python stack. Together they say which thread
burns the CPU and, inside it, which functions.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import psutil

PROCESS_PATH = re.compile(r'^(?:process \d+:"[^"]*";)+')
THREAD = re.compile(r"^thread \((\d+)\): ?(.*)$")
GENERIC_FILES = ("(threading.py)", "(concurrent/futures/thread.py)", "(contextlib.py)")

# Where a busy sample's time goes, by the first rule its stack matches (substrings of frames).
# The order matters: psycopg work under _write is psycopg, a hash under _apply_job is hashing.
WRITER_CATEGORIES = (
    ("PostgreSQL round trips (psycopg waiting on the socket)",
     ("Connection.wait (", "_communicate_gen", "_fetch_gen")),
    ("PostgreSQL round trips (pipeline.py: sending, waiting, reading results)", ("(ledger_server/pipeline.py)",)),
    ("psycopg: adapting query parameters", ("PostgresQuery.dump", "PostgresQuery.convert")),
    ("psycopg: other (statements, results, transactions)", ("(psycopg/",)),
    ("request hashing (commands.request_hash)", ("request_hash",)),
    ("protobuf: responses and outbox events (wire.py)", ("(ledger_server/wire.py)", "(protobuf/")),
    ("ledger rules in memory (state_machine.py)", ("(ledger_server/state_machine.py)",)),
    ("decoding rows (rows.py)", ("(ledger_server/rows.py)",)),
    ("posting engine: building parameters, bookkeeping", ("(ledger_server/posting.py)",)),
    ("group commit queue and futures", ("(ledger_server/group_commit.py)",)),
    ("the writer process's pipe (jobs in, outcomes out)", ("(multiprocessing/connection.py)", "pickle")),
)
HANDLER_CATEGORIES = (
    ("waiting for the writer (future, condition variable)", ("Committer.submit", "Condition.wait")),
    ("request validation (validation.py, commands.py)",
     ("(ledger_server/validation.py)", "(ledger_server/commands.py)")),
    ("metrics (prometheus_client)", ("(prometheus_client/",)),
    ("response and error messages (protobuf, status)",
     ("FromString", "(protobuf/", "(ledger_server/errors.py)")),
    ("gRPC Python server layer", ("(grpc/",)),
    ("thread pool", ("(concurrent/futures/",)),
)
FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")
TOP = 15


def py_spy() -> str | None:
    local = pathlib.Path(sys.executable).parent / "py-spy"
    return str(local) if local.is_file() else shutil.which("py-spy")


def thread_group(name: str) -> str:
    """Server threads by job: gRPC handlers, the group-commit writer, the rest."""
    if name.startswith("rpc"):
        return "rpc handlers"
    if name == "group-committer":
        return "group-commit writer"
    if not name:
        return "unnamed"
    return "other python"


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (OS thread name, CPU seconds so far), over the process and its children (the
    ledger's writer process)."""
    result: dict[int, tuple[str, float]] = {}
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return result
    for process in processes:
        try:
            threads = process.threads()
        except psutil.Error:
            continue
        for t in threads:
            try:
                comm = pathlib.Path(f"/proc/{process.pid}/task/{t.id}/comm").read_text().strip()
            except OSError:
                comm = "?"
            result[t.id] = (comm, t.user_time + t.system_time)
    return result


def _with_children(pid: int) -> list[int]:
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def _short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    function, path = match.groups()
    for marker in ("site-packages/", "ledger_server/", "benchmarks/", "python3.11/"):
        if marker in path:
            path = (marker if marker.endswith("_server/") else "") + path.split(marker, 1)[1]
            break
    return f"{function} ({path})"


@dataclass
class Profile:
    seconds: float
    samples: int = 0
    by_group: Counter[str] = field(default_factory=Counter)
    inclusive: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    self_time: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    thread_cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds by thread group
    raw_path: str = ""
    categories: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    native: dict[str, float] = field(default_factory=dict)  # perf: share of CPU samples by library
    kernel_symbols: dict[str, float] = field(default_factory=dict)  # perf: top kernel symbols

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "samples": self.samples,
            "samples_by_thread_group": dict(self.by_group.most_common()),
            "thread_cpu_s": {
                k: round(v, 3) for k, v in sorted(self.thread_cpu_s.items(), key=lambda x: -x[1])
            },
            "inclusive": {g: c.most_common(TOP) for g, c in self.inclusive.items()},
            "self": {g: c.most_common(TOP) for g, c in self.self_time.items()},
            "raw_path": self.raw_path,
            "categories": {g: c.most_common() for g, c in self.categories.items()},
            "native_libraries_pct": self.native,
            "kernel_symbols_pct": self.kernel_symbols,
        }


def parse_collapsed(text: str, profile: Profile) -> dict[int, str]:
    """Fold py-spy's raw output (`thread (tid): name;frame;frame N`) into the profile."""
    names: dict[int, str] = {}
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # --subprocesses: each stack starts with its process path, command lines quoted (they may
        # hold semicolons)
        frames = PROCESS_PATH.sub("", stack).split(";")
        head = THREAD.match(frames[0])
        name = ""
        if head:
            tid, name = int(head.group(1)), head.group(2)
            names[tid] = name
            frames = frames[1:]
        if frames and not FRAME.match(frames[0]):  # py-spy puts the thread name as its own frame
            name = frames[0]
            frames = frames[1:]
        group = thread_group(name)
        profile.samples += count
        profile.by_group[group] += count
        short = [_short(f) for f in frames]
        for frame in set(short):
            if not frame.endswith(GENERIC_FILES):
                profile.inclusive[group][frame] += count
        if short:
            profile.self_time[group][short[-1]] += count
        rules = {"group-commit writer": WRITER_CATEGORIES, "rpc handlers": HANDLER_CATEGORIES}.get(group)
        if rules:
            profile.categories[group][_category(short, rules)] += count
    return names


def _category(stack: list[str], rules: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """The first rule any frame of the stack matches; waiting rules look at the innermost frame."""
    leaf = stack[-1] if stack else ""
    for index, (label, needles) in enumerate(rules):
        frames = [leaf] if index == 0 else stack
        if any(needle in frame for frame in frames for needle in needles):
            return label
    return "other"


class NativeRecorder:
    """`perf record` of the same process and its writer process: what py-spy cannot see (the kernel: context switches
    and futex wake-ups between threads; gRPC's C core; libc). Optional: skipped without perf."""

    def __init__(self, pid: int, seconds: int, data_path: pathlib.Path) -> None:
        self._binary = shutil.which("perf")
        self._pid, self._seconds, self._data = pid, seconds, data_path
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self._binary is None:
            return
        self._proc = subprocess.Popen(
            [self._binary, "record", "-F", "499", "-p", ",".join(str(p) for p in _with_children(self._pid)),
             "-o", str(self._data), "--",
             "sleep", str(self._seconds)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def finish(self, profile: Profile) -> None:
        if self._binary is None or self._proc is None:
            return
        try:
            self._proc.wait(timeout=self._seconds + 30)
            profile.native = self._report("dso", None)
            profile.kernel_symbols = self._report("sym", "[kernel.kallsyms]")
        except (subprocess.SubprocessError, OSError):
            return  # perf refused (permissions, no PMU): py-spy's view stands alone
        finally:
            self._data.unlink(missing_ok=True)

    def _report(self, key: str, dso: str | None) -> dict[str, float]:
        argv = [str(self._binary), "report", "-i", str(self._data), "--sort", key, "--stdio"]
        if dso:
            argv += ["--dsos", dso]
        text = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
        shares: dict[str, float] = {}
        for line in text.splitlines():
            match = re.match(r"^\s+([0-9.]+)%\s+(?:\[\.\]|\[k\])?\s*(\S.*?)\s*$", line)
            if match and len(shares) < TOP:
                shares[match.group(2)] = float(match.group(1))
        return shares


class Recorder:
    """py-spy record on the server (and its writer process) for a fixed time, with /proc thread CPU
    around it."""

    def __init__(self, pid: int, seconds: int, raw_path: pathlib.Path, rate_hz: int = 100) -> None:
        binary = py_spy()
        if binary is None:
            raise RuntimeError("py-spy not installed (pip install -e '.[bench]')")
        self._binary: str = binary
        self._pid, self._seconds, self._raw = pid, seconds, raw_path
        self._rate = rate_hz
        self._proc: subprocess.Popen[bytes] | None = None
        self._cpu_before: dict[int, tuple[str, float]] = {}

    def start(self) -> None:
        self._cpu_before = thread_cpu(self._pid)
        self._raw.parent.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [self._binary, "record", "--pid", str(self._pid), "--duration", str(self._seconds),
             "--rate", str(self._rate), "--format", "raw", "--threads", "--nonblocking", "--subprocesses",
             "-o", str(self._raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def finish(self) -> Profile:
        assert self._proc is not None
        _, err = self._proc.communicate(timeout=self._seconds + 60)
        cpu_after = thread_cpu(self._pid)
        if self._proc.returncode != 0 or not self._raw.is_file():
            raise RuntimeError(f"py-spy failed: {err.decode()[-1000:]}")
        profile = Profile(seconds=self._seconds, raw_path=str(self._raw))
        names = parse_collapsed(self._raw.read_text(), profile)
        for tid, (comm, seconds) in cpu_after.items():
            used = seconds - self._cpu_before.get(tid, (comm, 0.0))[1]
            group = thread_group(names[tid]) if tid in names else f"no Python stack sampled: {comm}"
            profile.thread_cpu_s[group] = profile.thread_cpu_s.get(group, 0.0) + used
        return profile
