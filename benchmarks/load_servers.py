"""The load benchmark's servers: gunicorn alone, or `supervising-ui serve` processes, and the CPU
they (and PostgreSQL's backends of the database) use.

One server is gunicorn started directly (no job worker, no access log), as the earlier figures
were measured. Several servers are `supervising-ui serve` processes (gunicorn and a job worker
each) on their own ports, sharing the instance folder, the database and the job queue: a team's
set-up on one machine.
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_server(url: str, seconds: float = 120) -> None:
    """Wait until url answers (any status); exit with a message if it never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the server at {url} did not answer")


def answers(port: int) -> bool:
    """Whether the login page answers 200 on 127.0.0.1:port."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/login")
        return connection.getresponse().status == 200
    except OSError:
        return False


class Server:
    """A server process in its own process group, answering on 127.0.0.1:port."""

    def __init__(self, argv: list[str], env: dict, port: int, log_path: Path | None = None):
        self.argv, self.env, self.port, self.log_path = argv, env, port, log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> None:
        """Start the process and wait until it answers."""
        log = open(self.log_path, "ab") if self.log_path else None
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=log,
                                        stderr=subprocess.STDOUT if log else None,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.argv[2:4]} exited with {self.process.returncode}"
                                 + (f"; see {self.log_path}" if self.log_path else ""))
            if answers(self.port):
                return
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"the server on port {self.port} did not answer within {timeout} s")

    def stop(self) -> None:
        """SIGTERM (serve ends its children), then SIGKILL to the group if it lingers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(45)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)

    def pids(self) -> list[int]:
        """The process and all its descendants (Linux /proc)."""
        children: dict[int, list[int]] = {}
        for pid, fields in _all_stats():
            children.setdefault(int(fields[1]), []).append(pid)
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the process and its descendants alive now."""
        return sum(_cpu_seconds(pid) for pid in self.pids())

    def job_worker_pid(self) -> int | None:
        """The pid of serve's job worker, if it runs."""
        for pid in self.pids():
            try:
                command = (Path("/proc") / str(pid) / "cmdline").read_bytes()
            except OSError:
                continue
            if command.replace(b"\0", b" ").endswith(b"supervising_ui.cli worker "):
                return pid
        return None


def gunicorn(env: dict, port: int, workers: int, threads: int,
             access_log: str | None = None) -> Server:
    """gunicorn (gthread) with serve's settings file, without a job worker or an access log
    unless one is asked for."""
    argv = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class",
            "gthread", "--threads", str(threads), "--bind", f"127.0.0.1:{port}",
            "--log-level", "warning", "--config", "python:supervising_ui.web.gunicorn_config",
            "supervising_ui:create_app()"]
    if access_log:  # %(M)s: milliseconds the server spent on the request
        argv[-1:-1] = ["--access-logfile", access_log,
                       "--access-logformat", '%(m)s %(U)s %(s)s %(M)s']
    return Server(argv, env, port)


def serve(env: dict, port: int, workers: int, threads: int, log_path: Path) -> Server:
    """`supervising-ui serve` (gunicorn and its job worker) without an access log."""
    argv = [sys.executable, "-m", "supervising_ui.cli", "serve", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--threads", str(threads),
            "--access-log", "none"]
    return Server(argv, env, port, log_path)


def database_cpu_seconds(database_name: str | None) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to this database (their
    process titles name it); 0 for SQLite. Backends that ended are not counted."""
    if not database_name:
        return 0.0
    marker = f" {database_name} ".encode()
    total = 0.0
    for pid, _ in _all_stats():
        try:
            command = (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue
        if command.startswith(b"postgres: ") and marker in command:
            total += _cpu_seconds(pid)
    return total


def _all_stats():
    """Yield (pid, the fields of /proc/pid/stat after the command name) of every process."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
