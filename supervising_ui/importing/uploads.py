"""Browser imports: stage uploaded files, plan them, and queue imports as background jobs.

Uploads are saved under the instance folder by number (their names are only labels) with a
names.json beside them; the job that imports them removes the folder when it ends.
"""
import json
import re
import secrets
import zipfile
import zlib
from contextlib import ExitStack
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from .. import storage
from ..extensions import db
from ..jobs import queue as jobs
from ..models import Job, Project
from . import ImportRefused
from .sources import (
    ImportPlan,
    UnpackBudget,
    file_reader,
    plan_named_files,
    plan_server_import,
    zip_entries,
)

JOB_KIND = "import"
STAGING_FOLDER = "import_staging"
_STAGING_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


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
    budget = UnpackBudget()  # shared by the upload's zips
    for index, name in enumerate(names):
        path = folder / f"{index:05d}"
        lowered = name.lower()
        if lowered.endswith(".zip"):
            for entry_name, read in zip_entries(path, name, stack, plan, budget).items():
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
            raise ImportRefused(f"cannot read the manifest {manifest_name} ({error})") from error
    named = plan_named_files(entries, manifest_data, manifest_name)
    named.rejected = plan.rejected + named.rejected
    return named


def submit_upload_import(project: Project, files, user_id: int) -> Job:
    """Stage uploaded files and queue their import as a background job; return the job."""
    token = stage_uploads(files)
    return jobs.submit(JOB_KIND, project.id, {"source": "upload", "staging": token}, user_id)


def submit_server_import(project: Project, folder: str, manifest: str, user_id: int) -> Job:
    """Check a server-folder import's paths and queue it as a background job; return the job."""
    plan_server_import(folder, manifest)  # refuse bad paths now, while the admin is looking
    return jobs.submit(JOB_KIND, project.id,
                       {"source": "server", "folder": folder, "manifest": manifest}, user_id)


def recent_imports(project: Project, limit: int = 5) -> list[Job]:
    """Return project's latest import jobs, newest first."""
    return list(db.session.scalars(select(Job).where(
        Job.project_id == project.id, Job.kind == JOB_KIND).order_by(Job.id.desc()).limit(limit)))
