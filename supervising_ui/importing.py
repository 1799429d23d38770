"""Image import: files, zips, folders and manifests -> managed storage, with a report.

An import is planned first (which files, with which metadata and labels; what is refused
already) and then run: each file is read, hashed, checked against the project's existing
content hashes (loaded once), decoded by the one validator in storage.py, written to managed
storage and only then added as a row; rows are committed in batches. A killed import thus
leaves whole batches behind, and running it again adds only what is missing.
"""
import csv
import io
import json
import logging
import os
import re
import secrets
import shutil
import time
import zipfile
import zlib
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import jobs, storage
from .extensions import db
from .models import Image, Label, Project

log = logging.getLogger(__name__)

BATCH_SIZE = 250
# Files larger than this are refused before being read into memory.
MAX_FILE_BYTES = 256 * 1024**2
# Longest list of names kept in a stored report (the counts stay exact).
REPORT_LIST_LIMIT = 2000
FILENAME_COLUMN = "filename"
LABEL_COLUMN = "label"
STAGING_FOLDER = "import_staging"
_STAGING_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_INTEGER = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_DECIMAL = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?$")
_LEADING_ZERO = re.compile(r"^[-+]?0[0-9]")
_LARGEST_EXACT_INTEGER = 2**53  # larger integers lose digits in JavaScript: keep them as text


class ImportRefused(ValueError):
    """An import request that cannot start at all, with a message for the user."""


class ManifestError(ImportRefused):
    """A manifest CSV that cannot be read as a whole (encoding, header)."""


@dataclass
class Candidate:
    """One file to import: its name, how to read it, its metadata and optional label."""

    name: str
    read: Callable[[], bytes]
    metadata: dict = field(default_factory=dict)
    label: str | None = None


@dataclass
class ImportPlan:
    """The files an import will try, and those refused while planning it."""

    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def reject(self, name: str, reason: str) -> None:
        """Record that name is not imported, and why."""
        self.rejected.append({"name": name, "reason": reason})


@dataclass
class ImportReport:
    """What an import did: counts, the duplicate names and every rejection with its reason."""

    total: int = 0
    added: int = 0
    labels_added: int = 0
    duplicates: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Return the report as JSON-ready data, long name lists cut to REPORT_LIST_LIMIT."""
        return {"total": self.total, "added": self.added, "labels_added": self.labels_added,
                "duplicate_count": len(self.duplicates), "rejected_count": len(self.rejected),
                "duplicates": self.duplicates[:REPORT_LIST_LIMIT],
                "rejected": self.rejected[:REPORT_LIST_LIMIT]}

    def summary(self) -> str:
        """Return the one-line summary of the report."""
        return (f"added {self.added} images ({self.labels_added} labels), "
                f"{len(self.duplicates)} duplicates, {len(self.rejected)} rejected")


# --- Planning: where the files come from ---------------------------------------------------

def typed_value(text: str):
    """Return text as an int or float where it looks like a number, else the stripped text."""
    text = text.strip()
    if _INTEGER.match(text):
        number = int(text)
        return number if abs(number) <= _LARGEST_EXACT_INTEGER else text
    if _DECIMAL.match(text) and not _LEADING_ZERO.match(text.split(".")[0] or "x"):
        return float(text)
    return text


def read_manifest(data: bytes) -> tuple[list[tuple[int, dict]], list[str]]:
    """Parse manifest CSV bytes into (line number, row) pairs and the metadata column names."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ManifestError(f"manifest is not UTF-8 text (bad byte at position {error.start}): "
                            "save it as CSV UTF-8") from error
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise ManifestError(f"manifest is not a readable CSV file ({error})") from error
    if not rows:
        raise ManifestError("manifest is empty")
    header = [name.strip() for name in rows[0]]
    lowered = [name.lower() for name in header]
    if FILENAME_COLUMN not in lowered:
        raise ManifestError(f"manifest has no '{FILENAME_COLUMN}' column (its columns: "
                            f"{', '.join(header) or 'none'})")
    repeated = sorted({name for name in lowered if name and lowered.count(name) > 1})
    if repeated:
        raise ManifestError(f"manifest columns repeat: {', '.join(repeated)}")
    records = []
    for line_number, values in enumerate(rows[1:], start=2):
        if not any(value.strip() for value in values):
            continue  # blank lines are not rows
        records.append((line_number, _record(header, lowered, values)))
    metadata_columns = [name for name, low in zip(header, lowered)
                        if name and low not in (FILENAME_COLUMN, LABEL_COLUMN)]
    return records, metadata_columns


def _record(header: list[str], lowered: list[str], values: list[str]) -> dict:
    """Return one manifest row as {"filename", "label", "metadata", "error"}."""
    record = {"filename": "", "label": None, "metadata": {}, "error": None}
    if len(values) != len(header):
        record["error"] = f"has {len(values)} fields where the header has {len(header)}"
    for name, low, value in zip(header, lowered, values):
        if low == FILENAME_COLUMN:
            record["filename"] = value.strip().replace("\\", "/")
        elif low == LABEL_COLUMN:
            record["label"] = value.strip() or None
        elif name and value.strip():
            record["metadata"][name] = typed_value(value)
    if not record["filename"] and record["error"] is None:
        record["error"] = "has no filename"
    return record


def file_reader(path: Path) -> Callable[[], bytes]:
    """Return a function that reads path, refusing files over MAX_FILE_BYTES."""
    def read() -> bytes:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise storage.ImageRejected(f"file is {size} bytes, over the limit of {MAX_FILE_BYTES}")
        return path.read_bytes()
    return read


def confined_path(root: Path, relative: str) -> Path:
    """Return root/relative resolved (symlinks included); refuse anything that leaves root."""
    root = root.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ImportRefused(f"{relative!r} lies outside {root}")
    return target


def _is_hidden(relative: PurePosixPath) -> bool:
    """Return whether a path is an OS artefact (dot files, __MACOSX) rather than user data."""
    return any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)


def plan_folder(folder: Path, root: Path | None = None) -> ImportPlan:
    """Plan importing every file below folder (names relative to it); stay inside root."""
    root = (root or folder).resolve()
    folder = confined_path(root, str(folder))
    if not folder.is_dir():
        raise ImportRefused(f"{folder} is not a folder")
    plan = ImportPlan()
    for directory, subfolders, files in os.walk(folder):
        subfolders.sort()
        for file_name in sorted(files):
            path = Path(directory) / file_name
            relative = PurePosixPath(path.relative_to(folder).as_posix())
            if _is_hidden(relative):
                continue
            if not path.resolve().is_relative_to(root):
                plan.reject(str(relative), f"symbolic link leading outside {root}")
                continue
            if relative.suffix.lower() == ".csv":
                plan.reject(str(relative), "a CSV file, not an image: give it as the manifest "
                                           "to import its metadata and labels")
                continue
            plan.candidates.append(Candidate(str(relative), file_reader(path)))
    return plan


def plan_manifest(manifest: Path, image_root: Path) -> ImportPlan:
    """Plan importing the files a manifest names below image_root, with its metadata and labels."""
    records, _ = read_manifest(manifest.read_bytes())
    plan = ImportPlan()
    for line_number, record in records:
        name = record["filename"]
        if record["error"]:
            plan.reject(name or f"line {line_number}", f"manifest line {line_number} {record['error']}")
            continue
        try:
            path = confined_path(image_root, name)
        except ImportRefused:
            plan.reject(name, f"manifest line {line_number}: path leads outside the image folder")
            continue
        if not path.is_file():
            plan.reject(name, f"manifest line {line_number}: file not found in {image_root}")
            continue
        plan.candidates.append(Candidate(name, file_reader(path), record["metadata"],
                                         record["label"]))
    return plan


def safe_zip_name(name: str) -> str | None:
    """Return a zip entry's name normalised, or None when it is absolute or climbs with '..'."""
    name = name.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
        return None
    return path.as_posix()


def zip_entries(archive_path: Path, archive_name: str, stack: ExitStack,
                plan: ImportPlan) -> dict[str, Callable[[], bytes]]:
    """Open a zip (kept open by stack) and return {entry name: reader}; reject unsafe entries."""
    try:
        archive = stack.enter_context(zipfile.ZipFile(archive_path))
    except (zipfile.BadZipFile, OSError) as error:
        plan.reject(archive_name, f"not a readable zip file ({error})")
        return {}
    entries = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        name = safe_zip_name(info.filename)
        if name is None:
            plan.reject(f"{archive_name}: {info.filename}",
                        "unsafe path in zip (absolute or containing '..'); not extracted")
        elif not _is_hidden(PurePosixPath(name)):
            entries[name] = _zip_reader(archive, info)
    return entries


def _zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    """Return a function that reads one zip entry, refusing entries over MAX_FILE_BYTES."""
    def read() -> bytes:
        if info.file_size > MAX_FILE_BYTES:
            raise storage.ImageRejected(
                f"zip entry is {info.file_size} bytes unpacked, over the limit of {MAX_FILE_BYTES}")
        with archive.open(info) as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # the declared size may lie
        if len(data) > MAX_FILE_BYTES:
            raise storage.ImageRejected(f"zip entry unpacks to over {MAX_FILE_BYTES} bytes")
        return data
    return read


def plan_named_files(entries: dict[str, Callable[[], bytes]], manifest: bytes | None,
                     manifest_name: str = "manifest") -> ImportPlan:
    """Plan importing named files (uploads, zip entries), matched to a manifest when given."""
    plan = ImportPlan()
    if manifest is None:
        plan.candidates = [Candidate(name, read) for name, read in entries.items()]
        return plan
    try:
        records, _ = read_manifest(manifest)
    except ManifestError as error:
        plan.reject(manifest_name, str(error))
        for name in entries:
            plan.reject(name, "not imported: the manifest was rejected")
        return plan
    by_base_name = {}
    for name in entries:
        by_base_name.setdefault(PurePosixPath(name).name, []).append(name)
    used = set()
    for line_number, record in records:
        name = record["filename"]
        if record["error"]:
            plan.reject(name or f"line {line_number}", f"manifest line {line_number} {record['error']}")
            continue
        matches = [name] if name in entries else by_base_name.get(PurePosixPath(name).name, [])
        if len(matches) != 1:
            reason = "file not found among the uploaded files" if not matches else \
                f"ambiguous: several uploaded files are called {PurePosixPath(name).name}"
            plan.reject(name, f"manifest line {line_number}: {reason}")
            continue
        used.add(matches[0])
        plan.candidates.append(Candidate(name, entries[matches[0]], record["metadata"],
                                         record["label"]))
    for name in entries:
        if name not in used:
            plan.reject(name, "not listed in the manifest")
    return plan


# --- Running: files -> storage -> rows ------------------------------------------------------

class _Importer:
    """Imports one plan into one project: known hashes, the open batch and the report."""

    def __init__(self, project: Project, user_id: int | None):
        self.project_id = project.id
        self.user_id = user_id
        self.store = current_app.config["IMAGE_STORE"]
        self.max_pixels = current_app.config["MAX_IMAGE_PIXELS"]
        self.class_ids = {label_class.name: label_class.id for label_class in project.classes}
        # Loaded once: duplicate checks cost no query per file.
        self.known_hashes = set(db.session.scalars(
            select(Image.content_hash).where(Image.project_id == project.id)))
        self.batch: list[tuple[str, Image, Label | None]] = []  # added since the last commit
        self.report = ImportReport()

    def run(self, plan: ImportPlan, progress: Callable[[int, int], None] | None) -> ImportReport:
        """Import every candidate of plan, committing every BATCH_SIZE images."""
        self.report.total = len(plan.candidates) + len(plan.rejected)
        self.report.rejected.extend(plan.rejected)
        for index, candidate in enumerate(plan.candidates, start=1):
            reason = self.add(candidate)
            if reason == "duplicate":
                self.report.duplicates.append(candidate.name)
            elif reason:
                self.report.rejected.append({"name": candidate.name, "reason": reason})
            if len(self.batch) >= BATCH_SIZE:
                self.commit()
            if progress:
                progress(index, len(plan.candidates))
        self.commit()
        return self.report

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
        storage.store_bytes(self.store, info.storage_key, data)  # the file exists before its row
        image = Image(project_id=self.project_id, storage_key=info.storage_key,
                      original_name=candidate.name[:512], content_hash=digest, width=info.width,
                      height=info.height, meta=candidate.metadata,
                      label_count=1 if candidate.label else 0)
        label = None if candidate.label is None else Label(
            project_id=self.project_id, image=image, user_id=self.user_id,
            label_class_id=self.class_ids[candidate.label])
        db.session.add_all([image] + ([label] if label else []))
        self.known_hashes.add(digest)
        self.batch.append((candidate.name, image, label))
        return None

    def commit(self) -> None:
        """Commit the batch; where a concurrent import stored some of it first, redo it row by row."""
        if not self.batch:
            return
        try:
            db.session.commit()
            committed = self.batch
        except IntegrityError:
            db.session.rollback()
            log.info("import into project %s raced another import; retrying its batch row by row",
                     self.project_id)
            committed = self._commit_one_by_one()
        self.report.added += len(committed)
        self.report.labels_added += sum(1 for _, _, label in committed if label is not None)
        self.batch = []

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
                label_class_id=label.label_class_id)
            db.session.add_all([fresh] + ([fresh_label] if fresh_label else []))
            db.session.commit()
            committed.append((name, fresh, fresh_label))
        return committed


def run_import(project: Project, plan: ImportPlan, user_id: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Import a plan's files into project; labels are attributed to user_id; return the report."""
    return _Importer(project, user_id).run(plan, progress)


# --- Browser imports: staging and the background job ---------------------------------------

def import_root() -> Path:
    """Return the configured IMPORT_ROOT, or refuse server-folder imports where none is set."""
    configured = current_app.config.get("IMPORT_ROOT")
    if not configured:
        raise ImportRefused("importing from a server folder is off: set IMPORT_ROOT "
                            "(SUPERVISING_UI_IMPORT_ROOT) to the folder admins may import from")
    root = Path(configured).resolve()
    if not root.is_dir():
        raise ImportRefused(f"IMPORT_ROOT {root} is not a folder on the server")
    return root


def plan_server_import(folder: str, manifest: str) -> ImportPlan:
    """Plan a server-side import of a folder and/or manifest, both relative to IMPORT_ROOT."""
    root = import_root()
    folder, manifest = (folder or "").strip(), (manifest or "").strip()
    if not folder and not manifest:
        raise ImportRefused("give a folder, a manifest, or both (paths below IMPORT_ROOT)")
    folder_path = confined_path(root, folder) if folder else None
    if manifest:
        manifest_path = confined_path(root, manifest)
        if not manifest_path.is_file():
            raise ImportRefused(f"manifest {manifest!r} not found below IMPORT_ROOT")
        return plan_manifest(manifest_path, folder_path or manifest_path.parent)
    return plan_folder(folder_path, root)


def staging_folder(token: str) -> Path:
    """Return the staging folder of an upload (under the instance folder) from its token."""
    if not _STAGING_TOKEN.match(token or ""):
        raise ImportRefused("not an upload token")
    return Path(current_app.instance_path) / STAGING_FOLDER / token


def stage_uploads(files) -> str:
    """Save uploaded files (werkzeug FileStorage) to a fresh staging folder; return its token."""
    files = [upload for upload in files if upload and upload.filename]
    if not files:
        raise ImportRefused("choose image files, a .zip, or both (with an optional manifest .csv)")
    token = secrets.token_urlsafe(18)
    folder = staging_folder(token)
    folder.mkdir(parents=True)
    names = []
    for index, upload in enumerate(files):
        upload.save(folder / f"{index:05d}")  # saved under a number: the name is only a label
        names.append(upload.filename.replace("\\", "/").lstrip("/"))
    (folder / "names.json").write_text(json.dumps(names))
    return token


def plan_staged_upload(token: str, stack: ExitStack) -> ImportPlan:
    """Plan importing a staged upload: images, zips (opened on stack) and at most one manifest."""
    folder = staging_folder(token)
    names = json.loads((folder / "names.json").read_text())
    entries, manifests, plan = {}, [], ImportPlan()
    for index, name in enumerate(names):
        path = folder / f"{index:05d}"
        lowered = name.lower()
        if lowered.endswith(".zip"):
            for entry_name, read in zip_entries(path, name, stack, plan).items():
                if entry_name.lower().endswith(".csv"):  # a manifest packed with its images
                    manifests.append((f"{name}: {entry_name}", read))
                else:
                    entries[entry_name] = read
        elif lowered.endswith(".csv"):
            manifests.append((name, file_reader(path)))
        else:
            entries[name] = file_reader(path)
    for name, _ in manifests[1:]:
        plan.reject(name, "only one manifest per upload; this one was ignored")
    manifest_name, manifest_data = ("", None)
    if manifests:
        manifest_name = manifests[0][0]
        try:
            manifest_data = manifests[0][1]()
        except (storage.ImageRejected, OSError, zipfile.BadZipFile, zlib.error) as error:
            raise ManifestError(f"cannot read the manifest {manifest_name} ({error})") from error
    named = plan_named_files(entries, manifest_data, manifest_name)
    named.rejected = plan.rejected + named.rejected
    return named


def submit_upload_import(project: Project, files, user_id: int):
    """Stage uploaded files and queue their import as a background job; return the job."""
    token = stage_uploads(files)
    return jobs.submit("import", project.id, {"source": "upload", "staging": token}, user_id)


def submit_server_import(project: Project, folder: str, manifest: str, user_id: int):
    """Check a server-folder import's paths and queue it as a background job; return the job."""
    plan_server_import(folder, manifest)  # refuse bad paths now, while the admin is looking
    return jobs.submit("import", project.id,
                       {"source": "server", "folder": folder, "manifest": manifest}, user_id)


@jobs.handler("import")
def import_job(job, reporter) -> dict:
    """The background job of a browser import: plan, run with progress, return the report."""
    project = db.session.get(Project, job.project_id)
    params = job.params or {}
    last_report = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last_report[0] > 0.5 or done == total:
            last_report[0] = time.monotonic()
            reporter.progress(done / max(total, 1), f"{done} of {total} files")

    try:
        with ExitStack() as stack:
            if params.get("source") == "upload":
                plan = plan_staged_upload(params["staging"], stack)
            else:
                plan = plan_server_import(params.get("folder", ""), params.get("manifest", ""))
            reporter.progress(0.0, f"importing {len(plan.candidates)} files")
            report = run_import(project, plan, user_id=job.created_by_id, progress=progress)
    except ImportRefused as error:  # a whole-import refusal is a report, not a crash
        report = ImportReport(total=1, rejected=[{"name": params.get("manifest") or "import",
                                                  "reason": str(error)}])
    finally:
        if params.get("source") == "upload":
            shutil.rmtree(staging_folder(params["staging"]), ignore_errors=True)
    reporter.log(report.summary())
    return {"report": report.as_dict(), "summary": report.summary()}
