"""A scientist's first hour, timed in a real browser: from an empty instance to a model that
serves suggestions, with no click on any setting.

Starts `supervising-ui serve` (gunicorn and its job worker, SQLite, the defaults a new user
gets) on 127.0.0.1 in a throw-away instance, then drives headless Chromium (Playwright) as an
admin would: log in, create a HiRISE project from the preset, upload --images crops of
../shared/data/hirise (no labels), open the label page and label --labels images with the
keyboard (the right class, from the data set's manifest). The project's default learning loop
then retrains by itself; the script waits until the label page hands out images in
uncertainty order with the new model's suggestion, and prints the seconds of each step.
With --screenshots DIR it saves the label page, the model page and the search page.

    python benchmarks/first_hour.py [--images 338] [--labels 20] [--screenshots docs/screenshots]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_servers import free_port, wait_for_server  # noqa: E402  (beside this script)

DATA = ROOT.parent / "shared" / "data" / "hirise"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
KEYS = "123456789"


def main() -> None:
    """Run the first hour and print its timings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=338)
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--wait", type=float, default=600, help="longest wait for a model, s")
    parser.add_argument("--pace", type=float, default=3.0,
                        help="seconds between labels while the first model trains")
    parser.add_argument("--screenshots", type=Path, default=None)
    args = parser.parse_args()
    if not (DATA / "manifest.csv").is_file():
        raise SystemExit("../shared/data/hirise is not present")
    from playwright.sync_api import sync_playwright
    # SIGTERM (a stopped run) ends through `finally`, which stops the server it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))

    manifest = pd.read_csv(DATA / "manifest.csv")
    chosen = manifest[manifest["split"] == "val"].head(args.images)
    truth = dict(zip(chosen["filename"], chosen["label"], strict=True))
    workdir = Path(tempfile.mkdtemp(prefix="first-hour-"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUPERVISING_UI_")}
    env["SUPERVISING_UI_INSTANCE"] = str(workdir / "instance")
    console = [sys.executable, "-m", "supervising_ui.cli"]
    started = time.monotonic()
    said = subprocess.run([*console, "init", "--admin", "admin"], env=env, check=True,
                          capture_output=True, text=True).stdout
    password = re.search(r"password: (\S+)", said).group(1)
    port = free_port()
    server = subprocess.Popen([*console, "serve", "--port", str(port)], env=env, cwd=workdir,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    times = {}
    try:
        wait_for_server(f"{base}/login")
        times["set up and start the server"] = time.monotonic() - started
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
            page.set_default_timeout(args.wait * 1000)
            page.goto(f"{base}/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")

            tick = time.monotonic()
            page.goto(f"{base}/admin/")
            page.fill("input[name=name]", "HiRISE landmarks")
            page.select_option("select[name=preset]", "hirise")
            page.click("form.card button[type=submit]")
            page.wait_for_selector("input[type=file][name=files]")
            project_url = page.url
            project_id = int(re.search(r"/projects/(\d+)", project_url).group(1))
            page.set_input_files("input[type=file][name=files]",
                                 [str(DATA / "images" / name) for name in chosen["filename"]])
            page.click("form.import-form button[type=submit] >> nth=0")
            page.wait_for_function(
                "() => (document.querySelector('#import-status .message') || {}).textContent"
                "?.includes('finished')")
            times[f"create the project, upload and import {len(chosen)} crops"] = \
                time.monotonic() - tick

            tick = time.monotonic()
            page.goto(f"{base}/projects/{project_id}/label")
            classes = [button.get_attribute("data-name")
                       for button in page.query_selector_all(".class-button")]
            for _ in range(args.labels):
                page.wait_for_function("() => document.getElementById('filename').textContent")
                name = page.text_content("#filename")
                page.keyboard.press(KEYS[classes.index(truth[name])])
                page.keyboard.press("Enter")
                page.wait_for_function(
                    "previous => document.getElementById('filename').textContent !== previous",
                    arg=name)
            times[f"label {args.labels} images with the keyboard"] = time.monotonic() - tick

            # Then the labeler goes on at a human pace (a label every --pace seconds) until
            # the page hands out an image in uncertainty order with a suggestion.
            tick, more = time.monotonic(), 0
            while True:
                page.wait_for_function("() => document.getElementById('filename').textContent")
                pick = page.text_content("#pick")
                if "uncertainty" in pick and page.is_visible("#suggestion"):
                    break
                if time.monotonic() - tick > args.wait:
                    raise SystemExit(f"no model served within {args.wait} s (pick {pick})")
                time.sleep(args.pace)
                name = page.text_content("#filename")
                page.keyboard.press(KEYS[classes.index(truth[name])])
                page.keyboard.press("Enter")
                page.wait_for_function(
                    "previous => document.getElementById('filename').textContent !== previous",
                    arg=name)
                more += 1
            times[f"from the last label to uncertainty order with suggestions "
                  f"({more} more labels meanwhile, one every {args.pace:g} s)"] = \
                time.monotonic() - tick
            suggestion = page.text_content("#suggestion")
            if args.screenshots:
                args.screenshots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.screenshots / "first-hour-label.png"))
                page.goto(f"{base}/projects/{project_id}/models")
                page.screenshot(path=str(args.screenshots / "first-hour-models.png"), full_page=True)
                page.goto(f"{base}/projects/{project_id}/search")
                page.wait_for_selector("#grid .result")
                page.screenshot(path=str(args.screenshots / "first-hour-search.png"))
            # The first retrain's own account of its time (its job log), oldest job row last.
            page.goto(f"{base}/projects/{project_id}/models")
            first_retrain = page.locator("tr.job").last.get_attribute("data-job-id")
            job_log = page.request.get(f"{base}/api/jobs/{first_retrain}").json().get("log", "")
            browser.close()
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average at the end {open('/proc/loadavg').read().split()[0]}; "
          f"{os.cpu_count()} CPUs")
    for step, seconds in times.items():
        print(f"{seconds:7.1f} s  {step}")
    print(f"the label page then showed: {suggestion!r}")
    print("the first retrain's log:")
    print("".join(f"    {line}\n" for line in job_log.splitlines()))


if __name__ == "__main__":
    main()
