"""The observation viewer's speed over HTTP: time to the first deep-zoom tile and the p95 of
fetching every tile of the levels a viewer opens on, for the shared HiRISE browse image.

Sets up a throw-away instance (SQLite, the defaults), starts `supervising-ui serve` (gunicorn
and its job worker) on 127.0.0.1, imports ../shared/data/observations/hirise's browse image
with its PDS3 label through `supervising-ui import-observation` (the worker makes the tiles),
then, as OpenSeadragon does when the page opens in a WIDTHxHEIGHT viewer, asks for the Deep
Zoom descriptor and every tile of levels 0..L, L the first level at least as large as the
image's fitted size on screen. Each round opens a new connection (keep-alive inside it, as a
browser does); the first tile is timed from the descriptor request on a new connection to
the last byte of the first tile OpenSeadragon asks for (level L's top-left tile). Tiles are
fetched with an API token (Bearer), one request at a time.

    python benchmarks/observation_viewer.py [--rounds 5] [--viewer 1280x800]
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_servers import free_port, wait_for_server  # noqa: E402  (beside this script)

HIRISE = ROOT.parent / "shared" / "data" / "observations" / "hirise"
BROWSE = HIRISE / "ESP_072719_1970_RED.browse.jpg"
LABEL = HIRISE / "ESP_072719_1970_RED.LBL"
TILE = 256


def viewer_levels(width: int, height: int, viewer: tuple[int, int]) -> int:
    """The last level a viewer of that size opens on: the first at least the fitted size."""
    fitted = min(viewer[0] / width, viewer[1] / height)
    top = math.ceil(math.log2(max(width, height)))
    for level in range(top + 1):
        if 2 ** (level - top) >= fitted:
            return level
    return top


def tiles_of(width: int, height: int, last_level: int) -> list[tuple[int, int, int]]:
    """Every (level, column, row) of levels 0..last_level, lowest first, in reading order."""
    top = math.ceil(math.log2(max(width, height)))
    tiles = []
    for level in range(last_level + 1):
        shrink = 2 ** (top - level)
        columns = math.ceil(math.ceil(width / shrink) / TILE)
        rows = math.ceil(math.ceil(height / shrink) / TILE)
        tiles += [(level, column, row) for row in range(rows) for column in range(columns)]
    return tiles


def get(connection: http.client.HTTPConnection, path: str, token: str) -> bytes:
    """GET path on the connection with the token; fail on anything but 200."""
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
    return body


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def start_instance(workdir: Path) -> tuple[subprocess.Popen, str, str, dict]:
    """Set up an instance, start its server; return the server, base URL, token, console env."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("SUPERVISING_UI_")}
    env["SUPERVISING_UI_INSTANCE"] = str(workdir / "instance")
    console = [sys.executable, "-m", "supervising_ui.cli"]
    subprocess.run([*console, "init", "--admin", "admin"], env=env, check=True,
                   capture_output=True, text=True)
    subprocess.run([*console, "create-project", "hirise", "--preset", "hirise"], env=env,
                   check=True, capture_output=True, text=True)
    token = subprocess.run([*console, "create-token", "admin"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip().split()[-1]
    port = free_port()
    server = subprocess.Popen([*console, "serve", "--port", str(port)], env=env, cwd=workdir,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    return server, f"127.0.0.1:{port}", token, env


def measure_viewer(rounds: int = 5, viewer: tuple[int, int] = (1280, 800)) -> dict:
    """Import the HiRISE browse image into a throw-away instance, tile it, and time its tiles."""
    if not (BROWSE.is_file() and LABEL.is_file()):
        raise SystemExit("../shared/data/observations/hirise is not present")
    workdir = Path(tempfile.mkdtemp(prefix="observation-viewer-"))
    server, host, token, env = start_instance(workdir)
    try:
        wait_for_server(f"http://{host}/login")
        started = time.monotonic()
        said = subprocess.run(
            [sys.executable, "-m", "supervising_ui.cli", "import-observation", "hirise",
             "--image", str(BROWSE), "--label", str(LABEL)], env=env, check=True,
            capture_output=True, text=True).stdout
        import_seconds = time.monotonic() - started
        observation_id = int(re.search(r"Observation (\d+) ", said).group(1))
        connection = http.client.HTTPConnection(host, timeout=30)
        meta = json.loads(get(connection, f"/api/observations/{observation_id}", token))
        connection.close()
        width, height = meta["width"], meta["height"]
        last = viewer_levels(width, height, viewer)
        wanted = tiles_of(width, height, last)
        base = f"/api/observations/{observation_id}"
        first_tile, tile_times = [], []
        for _round in range(rounds):
            connection = http.client.HTTPConnection(host, timeout=30)
            tick = time.perf_counter()
            get(connection, f"{base}/deepzoom.dzi", token)
            get(connection, f"{base}/deepzoom_files/{last}/0_0.jpg", token)
            first_tile.append(time.perf_counter() - tick)
            for level, column, row in wanted:
                tick = time.perf_counter()
                get(connection, f"{base}/deepzoom_files/{level}/{column}_{row}.jpg", token)
                tile_times.append(time.perf_counter() - tick)
            connection.close()
        return {"image": f"{width} x {height}", "meters_per_pixel": meta["meters_per_pixel"],
                "import_and_tiling_s": round(import_seconds, 2),
                "viewer": f"{viewer[0]} x {viewer[1]}", "levels_opened": f"0..{last}",
                "tiles_per_open": len(wanted), "rounds": rounds,
                "first_tile_ms_median": round(1000 * percentile(first_tile, 0.5), 1),
                "first_tile_ms_max": round(1000 * max(first_tile), 1),
                "tile_ms_p50": round(1000 * percentile(tile_times, 0.5), 1),
                "tile_ms_p95": round(1000 * percentile(tile_times, 0.95), 1),
                "tiles_timed": len(tile_times)}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    """Run measure_viewer and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--viewer", default="1280x800", help="viewer size in CSS pixels, WxH")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    width, height = (int(part) for part in args.viewer.lower().split("x"))
    for key, value in measure_viewer(args.rounds, (width, height)).items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
