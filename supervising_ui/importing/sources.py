"""Planning an import: which files (folders, manifests, zips, uploaded names) with which
metadata and labels, and which are refused before anything is read.

Every path taken from a user (a manifest's file names, a zip's entry names, a server folder)
is confined to its root: symbolic links and '..' cannot reach files outside it. An upload's
zips together may hold MAX_UPLOAD_ENTRIES entries and unpack to MAX_UPLOAD_UNPACKED_BYTES;
a zip past either is rejected whole, its entry count read from its end record before the
central directory is loaded. Declared sizes are enough: Python's zipfile never unpacks more
than an entry declares (it stops there, and the CRC check fails).
"""
import os
import re
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from flask import current_app

from .. import storage
from ..manifests import ManifestError, read_manifest
from . import ImportRefused

# Files larger than this are refused before being read into memory.
MAX_FILE_BYTES = 256 * 1024**2
# What all the zips of one upload may hold: entries, and bytes once unpacked.
MAX_UPLOAD_ENTRIES = 50_000
MAX_UPLOAD_UNPACKED_BYTES = 8 * 1024**3


@dataclass
class UnpackBudget:
    """The entries and unpacked bytes an upload's zips may still hold (one per upload)."""

    entries: int = field(default_factory=lambda: MAX_UPLOAD_ENTRIES)
    unpacked_bytes: int = field(default_factory=lambda: MAX_UPLOAD_UNPACKED_BYTES)


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

    def readable_rows(self, records: list[tuple[int, dict]]) -> Iterator[tuple[int, dict]]:
        """Yield the manifest rows that read_manifest accepted; record the others as rejected."""
        for line_number, record in records:
            if record["error"]:
                self.reject(record["filename"] or f"line {line_number}",
                            f"manifest line {line_number} {record['error']}")
            else:
                yield line_number, record


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
    try:
        records, _ = read_manifest(manifest.read_bytes())
    except ManifestError as error:  # the manifest as a whole: the import cannot start
        raise ImportRefused(str(error)) from error
    plan = ImportPlan()
    for line_number, record in plan.readable_rows(records):
        name = record["filename"]
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
                plan: ImportPlan, budget: UnpackBudget | None = None
                ) -> dict[str, Callable[[], bytes]]:
    """Open a zip (kept open by stack) and return {entry name: reader}; reject unsafe entries.

    A zip that would take the upload past its budget (entries, unpacked bytes) is rejected whole.
    """
    budget = budget if budget is not None else UnpackBudget()
    declared = _declared_entry_count(archive_path)
    if declared is not None and declared > budget.entries:
        plan.reject(archive_name, f"zip holds {declared} entries: an upload's zips may hold "
                                  f"{MAX_UPLOAD_ENTRIES} in all; not extracted")
        return {}
    try:
        archive = stack.enter_context(zipfile.ZipFile(archive_path))
    except (zipfile.BadZipFile, OSError) as error:
        plan.reject(archive_name, f"not a readable zip file ({error})")
        return {}
    files = [info for info in archive.infolist() if not info.is_dir()]
    unpacked = sum(info.file_size for info in files)
    if len(files) > budget.entries or unpacked > budget.unpacked_bytes:
        plan.reject(archive_name, f"zip unpacks to {len(files)} files, {unpacked} bytes: an "
                                  f"upload's zips may hold {MAX_UPLOAD_ENTRIES} files and "
                                  f"{MAX_UPLOAD_UNPACKED_BYTES} bytes in all; not extracted")
        return {}
    budget.entries -= len(files)
    budget.unpacked_bytes -= unpacked
    entries = {}
    for info in files:
        name = safe_zip_name(info.filename)
        if name is None:
            plan.reject(f"{archive_name}: {info.filename}",
                        "unsafe path in zip (absolute or containing '..'); not extracted")
        elif not _is_hidden(PurePosixPath(name)):
            entries[name] = _zip_reader(archive, info)
    return entries


def _declared_entry_count(archive_path: Path) -> int | None:
    """Return the entry count a zip's end record declares, or None when it cannot be read."""
    try:
        with archive_path.open("rb") as handle:
            end_record = zipfile._EndRecData(handle)  # noqa: SLF001 (no public reader of it)
    except (OSError, AttributeError, zipfile.BadZipFile):
        return None
    return end_record[zipfile._ECD_ENTRIES_TOTAL] if end_record else None


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
    for line_number, record in plan.readable_rows(records):
        name = record["filename"]
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
