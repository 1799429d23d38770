"""Running an import plan: files -> managed storage -> rows, committed in batches, with a report.

Also the background job of browser imports (run_import_job, registered in create_app).
"""
import logging
import shutil
import time
import zipfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import storage
from ..database import refresh_planner_statistics
from ..extensions import db
from ..faults import disk_trouble
from ..jobs.queue import JobRefused
from ..models import Image, Label, Project, utcnow
from ..throttled import throttled
from . import ImportRefused, batches, orphans
from .sources import Candidate, ImportPlan, plan_server_import
from .uploads import plan_staged_upload, staging_folder

log = logging.getLogger(__name__)

BATCH_SIZE = 250
# ... or fewer, committed once this many seconds went by: a running import's files never wait
# long for their rows (the orphan sweep's grace period is much longer).
BATCH_SECONDS = 60.0
# Longest list of names kept in a stored report (the counts stay exact).
REPORT_LIST_LIMIT = 2000
# A job's progress row is written at most this often.
PROGRESS_EVERY_SECONDS = 0.5


@dataclass
class ImportReport:
    """What an import did: counts, the duplicate names and every rejection with its reason."""

    total: int = 0
    added: int = 0
    labels_added: int = 0
    duplicates: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    # Why the import stopped before its last file (a full disk), or None.
    stopped: str | None = None

    def as_dict(self) -> dict:
        """Return the report as JSON-ready data, long name lists cut to REPORT_LIST_LIMIT."""
        return {"total": self.total, "added": self.added, "labels_added": self.labels_added,
                "duplicate_count": len(self.duplicates), "rejected_count": len(self.rejected),
                "duplicates": self.duplicates[:REPORT_LIST_LIMIT],
                "rejected": self.rejected[:REPORT_LIST_LIMIT], "stopped": self.stopped}

    def detail_lines(self, duplicates_shown: int = 20) -> list[str]:
        """Return the report's lines for the console: the first duplicates, every rejection."""
        lines = [f"  duplicate: {name}" for name in self.duplicates[:duplicates_shown]]
        if len(self.duplicates) > duplicates_shown:
            lines.append(f"  ... and {len(self.duplicates) - duplicates_shown} more duplicates")
        return lines + [f"  rejected: {item['name']}: {item['reason']}" for item in self.rejected]

    def summary(self) -> str:
        """Return the one-line summary of the report."""
        return (f"added {self.added} images ({self.labels_added} labels), "
                f"{len(self.duplicates)} duplicates, {len(self.rejected)} rejected"
                + (f"; stopped: {self.stopped}" if self.stopped else ""))


class _Importer:
    """Imports one plan into one project: known hashes, the open batch and the report."""

    def __init__(self, project: Project, user_id: int | None, source: str):
        self.project_id = project.id
        self.user_id = user_id
        self.source = source
        self.started_at = utcnow()
        # This run's ImportBatch row, added with its first committed images.
        self.import_batch_id: int | None = None
        self.store = current_app.config["IMAGE_STORE"]
        self.max_pixels = current_app.config["MAX_IMAGE_PIXELS"]
        self.class_ids = {label_class.name: label_class.id for label_class in project.classes}
        # Loaded once: duplicate checks cost no query per file.
        self.known_hashes = set(db.session.scalars(
            select(Image.content_hash).where(Image.project_id == project.id)))
        self.batch: list[tuple[str, Image, Label | None]] = []  # added since the last commit
        self.batch_started = time.monotonic()
        # Keys of the files this run wrote for the open batch (not those that existed already).
        self.written: list[str] = []
        self.tried = 0
        self.report = ImportReport()

    def run(self, plan: ImportPlan, progress: Callable[[int, int], None] | None) -> ImportReport:
        """Import every candidate of plan, committing every BATCH_SIZE images (or BATCH_SECONDS).

        A failure removes the files of the uncommitted batch; a full disk stops the import with
        its report saying so, any other failure is raised.
        """
        self.report.total = len(plan.candidates) + len(plan.rejected)
        self.report.rejected.extend(plan.rejected)
        try:
            self._add_all(plan, progress)
        except BaseException as error:  # a JobInterrupted (SIGTERM) too
            reason = disk_trouble(error) if isinstance(error, Exception) else None
            removed = self.abandon_batch()
            if reason is None:
                raise
            log.error("import into project %s stopped: %s", self.project_id, error)
            self.report.stopped = (
                f"{reason}: the import stopped after {self.tried} of {len(plan.candidates)} "
                f"files and removed the {removed} file{'' if removed == 1 else 's'} it had "
                "stored for its unsaved last batch; free some space and import again (only "
                "what is missing is added)")
        if self.report.added:
            refresh_planner_statistics("image", "label")
        return self.report

    def _add_all(self, plan: ImportPlan, progress: Callable[[int, int], None] | None) -> None:
        """Add every candidate, committing full (or old) batches and the last one."""
        for index, candidate in enumerate(plan.candidates, start=1):
            self.tried = index - 1
            reason = self.add(candidate)
            if reason == "duplicate":
                self.report.duplicates.append(candidate.name)
            elif reason:
                self.report.rejected.append({"name": candidate.name, "reason": reason})
            if len(self.batch) >= BATCH_SIZE or \
                    time.monotonic() - self.batch_started >= BATCH_SECONDS:
                self.commit()
            if progress:
                progress(index, len(plan.candidates))
        self.tried = len(plan.candidates)
        self.commit()

    def abandon_batch(self) -> int:
        """Roll the open batch back and remove the files it wrote that no row names (another
        import may have stored the same bytes meanwhile); return how many files went."""
        db.session.rollback()
        written, self.written, self.batch = self.written, [], []
        if not written:
            return 0
        try:
            return orphans.remove_unreferenced(self.store, written)
        except Exception:  # the database is gone too: the worker's orphan sweep removes them
            db.session.rollback()
            log.exception("could not remove the %s files of an unfinished import batch",
                          len(written))
            return 0

    def add(self, candidate: Candidate) -> str | None:
        """Store one file and add its rows; return None, "duplicate" or why it is refused."""
        if candidate.label is not None:
            if candidate.label not in self.class_ids:
                return (f"unknown label {candidate.label!r}: valid classes are "
                        f"{', '.join(self.class_ids)}")
            if self.user_id is None:
                return "has a label, but the import has no user to attribute labels to"
        try:
            data = candidate.read()
        except storage.ImageRejected as error:
            return str(error)
        except FileNotFoundError:
            return "file not found"
        except (OSError, zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError) as error:
            return f"cannot read the file ({error})"
        digest = storage.content_hash(data)
        if digest in self.known_hashes:
            return "duplicate"
        try:
            info = storage.validate_image(data, self.max_pixels)
        except storage.ImageRejected as error:
            return str(error)
        if not storage.path_for_key(self.store, info.storage_key).exists():
            self.written.append(info.storage_key)  # a failure before the commit removes it
        storage.store_bytes(self.store, info.storage_key, data)  # the file exists before its row
        image = Image(project_id=self.project_id, storage_key=info.storage_key,
                      original_name=candidate.name[:512], content_hash=digest, width=info.width,
                      height=info.height, meta=candidate.metadata,
                      label_count=1 if candidate.label else 0)
        label = None if candidate.label is None else Label(
            project_id=self.project_id, image=image, user_id=self.user_id,
            label_class_id=self.class_ids[candidate.label], imported=True)
        db.session.add_all([image] + ([label] if label else []))
        self.known_hashes.add(digest)
        self.batch.append((candidate.name, image, label))
        return None

    def commit(self) -> None:
        """Commit the batch; where a concurrent import stored some of it first, redo it row by row."""
        self.batch_started = time.monotonic()
        if not self.batch:
            return
        opened_here = self.import_batch_id is None
        try:
            self._stamp([image for _, image, _ in self.batch])
            db.session.commit()
            committed = self.batch
        except IntegrityError:
            db.session.rollback()
            if opened_here:
                self.import_batch_id = None  # its row went with the rolled-back transaction
            log.info("import into project %s raced another import; retrying its batch row by row",
                     self.project_id)
            committed = self._commit_one_by_one()
        self.report.added += len(committed)
        self.report.labels_added += sum(1 for _, _, label in committed if label is not None)
        self.batch, self.written = [], []

    def _stamp(self, images: list[Image]) -> None:
        """Put images into this run's import batch, adding its row with the first ones."""
        with db.session.no_autoflush:  # the pending images are written once, stamped, at commit
            if self.import_batch_id is None:
                self.import_batch_id = batches.insert_batch(
                    self.project_id, self.user_id, self.source, self.started_at, len(images))
            else:
                batches.count_into_batch(self.import_batch_id, len(images))
        for image in images:
            image.import_batch_id = self.import_batch_id

    def _commit_one_by_one(self) -> list:
        """Add the batch's rows a transaction each, skipping content another import stored first."""
        committed = []
        for name, image, label in self.batch:
            if db.session.scalar(select(Image.id).where(
                    Image.project_id == self.project_id,
                    Image.content_hash == image.content_hash)) is not None:
                self.report.duplicates.append(name)
                continue
            fresh = Image(project_id=self.project_id, storage_key=image.storage_key,
                          original_name=image.original_name, content_hash=image.content_hash,
                          width=image.width, height=image.height, meta=image.meta,
                          label_count=image.label_count)
            fresh_label = None if label is None else Label(
                project_id=self.project_id, image=fresh, user_id=label.user_id,
                label_class_id=label.label_class_id, imported=True)
            self._stamp([fresh])
            db.session.add_all([fresh] + ([fresh_label] if fresh_label else []))
            db.session.commit()
            committed.append((name, fresh, fresh_label))
        return committed


# What runs after an import added images: (project_id, added, user_id) -> None. create_app
# registers the classify job's queueing here, so importing needs nothing of learning.
IMAGES_ADDED_HOOKS: list[Callable[[int, int, int | None], None]] = []


def on_images_added(hook: Callable[[int, int, int | None], None]) -> None:
    """Register hook(project_id, added, user_id) to run after an import added images (once:
    every create_app registers it again)."""
    if hook not in IMAGES_ADDED_HOOKS:
        IMAGES_ADDED_HOOKS.append(hook)


def tell_images_added(project_id: int, added: int, user_id: int | None) -> None:
    """Run every registered images-added hook."""
    for hook in IMAGES_ADDED_HOOKS:
        hook(project_id, added, user_id)


def run_import(project: Project, plan: ImportPlan, user_id: int | None = None,
               progress: Callable[[int, int], None] | None = None,
               source: str = "import") -> ImportReport:
    """Import a plan's files into project as one import batch described by source; labels are
    attributed to user_id (the callers tell the images_added hooks)."""
    return _Importer(project, user_id, source).run(plan, progress)


def job_source(params: dict, plan: ImportPlan) -> str:
    """Describe a browser import job's source for its import batch."""
    if params.get("source") == "upload":
        return f"upload of {len(plan.candidates) + len(plan.rejected)} files"
    parts = [f"{kind} {params[kind]}" for kind in ("folder", "manifest") if params.get(kind)]
    return "server " + ", ".join(parts) if parts else "server import"


def run_import_job(job, reporter) -> dict:
    """The background job of a browser import: plan, run with progress, return the report."""
    project = db.session.get(Project, job.project_id)
    params = job.params or {}

    def report_progress(done: int, total: int) -> None:
        reporter.progress(done / max(total, 1), f"{done} of {total} files")

    try:
        with ExitStack() as stack:
            if params.get("source") == "upload":
                plan = plan_staged_upload(params["staging"], stack)
            else:
                plan = plan_server_import(params.get("folder", ""), params.get("manifest", ""))
            reporter.progress(0.0, f"importing {len(plan.candidates)} files")
            report = run_import(project, plan, user_id=job.created_by_id,
                                progress=throttled(report_progress, PROGRESS_EVERY_SECONDS),
                                source=job_source(params, plan))
    except ImportRefused as error:  # a whole-import refusal is a report, not a crash
        report = ImportReport(total=1, rejected=[{"name": params.get("manifest") or "import",
                                                  "reason": str(error)}])
    finally:
        if params.get("source") == "upload":
            shutil.rmtree(staging_folder(params["staging"]), ignore_errors=True)
    reporter.log(report.summary())
    tell_images_added(job.project_id, report.added, job.created_by_id)
    result = {"report": report.as_dict(), "summary": report.summary()}
    if report.stopped:  # the job failed, and its result still says what it did
        raise JobRefused(report.stopped, result=result)
    return result
