"""The load benchmark's simulated labelers: a small keep-alive HTTP client and the labeling loop.

Used by load.py (and reliability.py through it); the figures of a round come from what the
labelers recorded here: latencies, acknowledged label ids and the time each held an image.
"""
from __future__ import annotations

import csv
import io
import json
import random
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

CLASSES = ["crater", "dark_dune", "bright_dune", "streak", "other", "edge"]


@dataclass
class LabelerRecord:
    """What one simulated labeler saw."""

    next_latencies: list = field(default_factory=list)
    submit_latencies: list = field(default_factory=list)
    # (image_id, held_from, held_until): from next's response to the submit/later request.
    holdings: list = field(default_factory=list)
    accepted: list = field(default_factory=list)  # label ids the server acknowledged
    labels: int = 0
    failures: int = 0
    failure_examples: list = field(default_factory=list)
    exhausted: bool = False


class Client:
    """A minimal keep-alive HTTP/1.1 client over a raw socket (http.client's header parsing
    costs several times more CPU, which the server would miss on a 2-core machine)."""

    def __init__(self, port: int, token: str | None):
        self.port = port
        # No token: an anonymous client (an Authorization header with a bad token is a 401).
        self.auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.sock = None
        self.buffer = b""
        self.last_headers: dict[str, str] = {}

    def _connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        """Send one request; return (status, body bytes). Raises OSError on a broken link."""
        payload = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.auth}"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        try:
            if self.sock is None:
                self._connect()
            self.sock.sendall(head.encode() + payload)
            return self._response()
        except (OSError, ValueError):
            self.close()
            raise

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def _read_exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill()
        found, self.buffer = self.buffer[:count], self.buffer[count:]
        return found

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def _response(self) -> tuple[int, bytes]:
        head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                body += self._read_exactly(size)
                self._read_until(b"\r\n")
                if size == 0:
                    break
        else:
            body = self._read_exactly(int(headers.get("content-length", "0")))
        self.last_headers = headers  # of the latest response (faults.py reads Retry-After)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        """Close the connection (the next request reconnects)."""
        if self.sock is not None:
            self.sock.close()
        self.sock = None


def labeler_loop(port: int, token: str, project_id: int, deadline: float, later_share: float,
                 think_seconds: float, record: LabelerRecord, seed: int) -> None:
    """Label as fast as the server answers until the deadline."""
    rng = random.Random(seed)
    client = Client(port, token)

    def fail(what):
        record.failures += 1
        if len(record.failure_examples) < 3:
            record.failure_examples.append(what)

    while time.perf_counter() < deadline:
        try:
            started = time.perf_counter()
            status, body = client.request("GET", f"/api/projects/{project_id}/next")
            held_from = time.perf_counter()
            record.next_latencies.append(held_from - started)
            if status == 204:
                record.exhausted = True
                return
            if status != 200:
                fail(f"next {status} {body[:200]!r}")
                continue
            given = json.loads(body)
            status, image = client.request("GET", given["image_url"])
            if status != 200 or not image:
                fail(f"image {status}")
            if think_seconds:
                time.sleep(rng.uniform(0, 2 * think_seconds))
            if rng.random() < later_share:
                held_until = time.perf_counter()
                status, body = client.request("POST", f"/api/images/{given['image_id']}/later")
                if status != 200:
                    fail(f"later {status} {body[:200]!r}")
            else:
                decision = {"label": rng.choice(CLASSES), "request_id": str(uuid.uuid4()),
                            "seconds_spent": held_from - started}
                held_until = time.perf_counter()
                status, body = client.request("POST", f"/api/images/{given['image_id']}/labels",
                                              decision)
                record.submit_latencies.append(time.perf_counter() - held_until)
                if status in (200, 201):
                    record.accepted.append(json.loads(body)["id"])
                    record.labels += 1
                else:
                    fail(f"submit {status} {body[:200]!r}")
            record.holdings.append((given["image_id"], held_from, held_until))
        except (OSError, ValueError) as error:
            fail(repr(error))


def duplicate_assignments(records: list[LabelerRecord]) -> int:
    """Count pairs of labelers holding the same image at overlapping times."""
    by_image = defaultdict(list)
    for labeler, record in enumerate(records):
        for image_id, held_from, held_until in record.holdings:
            by_image[image_id].append((held_from, held_until, labeler))
    duplicates = 0
    for holdings in by_image.values():
        holdings.sort()
        for index, (_start, end, labeler) in enumerate(holdings):
            for other_start, _, other in holdings[index + 1:]:
                if other_start >= end:
                    break
                duplicates += other != labeler
    return duplicates


def exported_label_ids(port: int, admin_token: str, project_id: int) -> set[int]:
    """Return the label ids of the project's labels export (CSV over HTTP)."""
    client = Client(port, admin_token)
    status, body = client.request("GET", f"/admin/projects/{project_id}/export?kind=labels"
                                         f"&format=csv")
    if status != 200:
        raise SystemExit(f"export failed: {status} {body[:300]!r}")
    return {int(row["label_id"]) for row in csv.DictReader(io.StringIO(body.decode()))}


def percentile_ms(values: list[float], q: float) -> float:
    """Return the q-th percentile of values (seconds) in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]
