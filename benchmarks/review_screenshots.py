"""The screenshots of docs/review.md and the README's team workflow: the review queue and the
agreement page of a HiRISE project that a small simulated team labeled.

200 crops of ../shared/data/hirise are imported (a random sample of its manifest, seed 0);
seven simulated labelers (label_quality.py's mix: 4 careful, 2 hasty, 1 spammer) give each
image 3 labels; 12 images are gold (their shared label); the project runs Dawid-Skene with
adaptive redundancy; the consensus job runs. Chromium then opens the review queue (as an
admin) and the agreement page, and saves both.

    python benchmarks/review_screenshots.py [--out docs/screenshots]
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
HIRISE = ROOT.parent / "shared" / "data" / "hirise"
CHROMIUM = "/usr/bin/chromium"
PASSWORD = "screenshot password 1"
IMAGES, GOLD, PER_IMAGE = 200, 12, 3


def build(instance: Path):
    """The app on a fresh instance with the labeled project; return (app, project id)."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from label_quality import LABELERS, simulated_label

    from supervising_ui import create_app
    from supervising_ui.accounts.users import create_user
    from supervising_ui.database import create_or_migrate
    from supervising_ui.extensions import db
    from supervising_ui.importing.runner import run_import
    from supervising_ui.importing.sources import Candidate, ImportPlan
    from supervising_ui.models import Image, Label
    from supervising_ui.projects.service import create_project
    from supervising_ui.review import consensus_jobs, gold
    app = create_app({"SECRET_KEY": "screenshots", "JOB_QUEUE": "memory",
                      "DATABASE_URL": f"sqlite:///{instance / 'app.sqlite3'}",
                      "IMAGE_STORE": str(instance / "images")})
    frame = pd.read_csv(HIRISE / "manifest.csv")
    frame = frame.sample(IMAGES, random_state=0)
    rng = random.Random(0)
    with app.app_context():
        create_or_migrate()
        admin = create_user("ada", role="admin", password=PASSWORD)[0]
        people = [create_user(name, password=PASSWORD)[0].id for name in (
            "careful_a", "careful_b", "careful_c", "careful_d", "hasty_e", "hasty_f", "spam_g")]
        project = create_project("HiRISE team", preset="hirise")
        project.consensus_method, project.labels_per_image = "dawid-skene", PER_IMAGE
        project.labels_max, project.target_posterior = 5, 0.95
        db.session.commit()
        run_import(project, ImportPlan([
            Candidate(name, lambda name=name: (HIRISE / "images" / name).read_bytes(),
                      {"source_id": source}) for name, source in zip(
                frame["filename"], frame["source_id"], strict=True)]),
            user_id=admin.id, source="screenshots")
        truth = dict(zip(frame["filename"], frame["label"], strict=True))
        classes = project.class_names
        ids = {c.name: c.id for c in project.classes}
        images = db.session.query(Image).filter_by(project_id=project.id).order_by(Image.id).all()
        for image in images:
            for worker in rng.sample(range(len(LABELERS)), PER_IMAGE):
                given = simulated_label(*LABELERS[worker], truth[image.original_name], classes,
                                        rng, False)
                db.session.add(Label(project_id=project.id, image_id=image.id,
                                     user_id=people[worker], label_class_id=ids[given],
                                     seconds_spent=round(rng.uniform(2, 9), 1)))
            image.label_count = PER_IMAGE
        db.session.commit()
        for image in images[-GOLD:]:
            gold.set_gold(project, image.id, truth[image.original_name])
        consensus_jobs.recompute(project.id)
        return app, project.id


def main() -> int:
    """Build the project, serve it, take both screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    arguments = parser.parse_args()
    if not (HIRISE / "manifest.csv").exists():
        print(f"skipped: {HIRISE} is not present")
        return 0
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server
    with tempfile.TemporaryDirectory() as instance:
        app, project_id = build(Path(instance))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(f"{base}/login")
            page.fill("input[name=username]", "ada")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")
            page.goto(f"{base}/projects/{project_id}/review")
            page.wait_for_function("() => document.getElementById('why').textContent"
                                   ".startsWith('Image')")
            page.wait_for_function("() => document.getElementById('picture').complete")
            arguments.out.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(arguments.out / "review-queue.png"), full_page=True)
            page.goto(f"{base}/projects/{project_id}/agreement")
            page.click("details summary")
            page.screenshot(path=str(arguments.out / "agreement.png"), full_page=True)
            browser.close()
        server.shutdown()
    print(f"saved review-queue.png and agreement.png in {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
