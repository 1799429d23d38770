"""`supervising-ui serve` as a real process: gunicorn and the job worker start beside it, a
dead job worker is restarted, and SIGTERM (what a service manager sends) ends every child."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is pid (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_serve_restarts_a_dead_worker_and_sigterm_ends_every_child(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISING_UI_")}
    env["SUPERVISING_UI_INSTANCE"] = str(tmp_path / "instance")
    port = free_port()
    subprocess.run([sys.executable, "-m", "supervising_ui.cli", "init"], env=env, check=True,
                   capture_output=True)
    serve = subprocess.Popen([sys.executable, "-m", "supervising_ui.cli", "serve", "--port",
                              str(port), "--workers", "1"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/login"), 60, "the login page")

        def job_worker():
            found = [pid for pid in children_of(serve.pid)
                     if alive(pid) and command_line(pid).endswith("supervising_ui.cli worker ")]
            return found[0] if found else None

        first = wait_until(job_worker, 10, "the job worker")
        gunicorn = [pid for pid in children_of(serve.pid) if "gunicorn" in command_line(pid)]
        assert len(gunicorn) == 1
        gunicorn_workers = children_of(gunicorn[0])
        assert gunicorn_workers

        os.kill(first, signal.SIGKILL)
        second = wait_until(lambda: (pid := job_worker()) != first and pid, 10,
                            "a restarted job worker")

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(40) == 0
        for pid in (second, gunicorn[0], *gunicorn_workers):
            wait_until(lambda pid=pid: not alive(pid), 10,
                       f"child {pid} ({command_line(pid)}) to end")
    finally:
        if serve.poll() is None:
            serve.kill()
