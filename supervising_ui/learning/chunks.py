"""A job split into chunk jobs: take queued chunks here, follow those other workers run.

The chunks are ordinary jobs on the queue (jobs/queue.py), so every worker of the queue takes
them, and a chunk whose worker died is reaped like any job: queued again once (its kind can run
twice), failed the second time. The job that follows them reaps as it waits, so a chunk of a
killed worker on this host runs again at once, one on another host after JOB_STALE_SECONDS;
a failed chunk is submitted anew up to RESUBMITS times before the job fails.
"""
from __future__ import annotations

import time
from typing import Callable

from sqlalchemy import select

from ..extensions import db
from ..jobs import queue as jobs
from ..models import Job

# The following job looks at its chunks this often while other workers run them.
FOLLOW_SECONDS = 1.0
# A failed chunk is submitted anew this many times; then the job fails with its error.
RESUBMITS = 1


class ChunkFailed(RuntimeError):
    """A chunk failed more often than it may be submitted again."""


def follow(parent_id: int, chunk_ids: list[int], reporter, label: str, total_images: int,
           resubmit: Callable[[object], int]) -> int:
    """Run queued chunks here and wait for the others until every chunk is done; report the
    progress of all workers; return the predictions the chunks stored.

    resubmit(the failed chunk's row) queues a new chunk for the same images and returns its id.
    """
    chunk_ids = list(chunk_ids)
    resubmitted: dict[int, int] = {}  # position -> times
    started = time.monotonic()
    while True:
        jobs.reap_stale_jobs()  # a dead worker's chunk goes back to the queue
        rows = _rows(chunk_ids)
        for position, row in enumerate(rows):
            if row.state == "failed":
                if resubmitted.get(position, 0) >= RESUBMITS:
                    raise ChunkFailed(f"chunk job {row.id} (images {row.params['first_image_id']}-"
                                      f"{row.params['last_image_id']}) failed: {row.error}")
                resubmitted[position] = resubmitted.get(position, 0) + 1
                chunk_ids[position] = resubmit(row)
        rows = _rows(chunk_ids)
        _report(reporter, rows, label, total_images, time.monotonic() - started)
        if all(row.state == "done" for row in rows):
            return sum(int((row.result or {}).get("predictions", 0)) for row in rows)
        queued = [row.id for row in rows if row.state == "queued"]
        if queued:
            jobs.run_job(queued[0])  # a claim: another worker may have taken it meanwhile
        else:
            time.sleep(FOLLOW_SECONDS)


def _rows(chunk_ids: list[int]) -> list:
    """The chunk jobs' rows (id, state, params, result, error, progress, worker) in the given
    order, the transaction ended."""
    found = {row.id: row for row in db.session.execute(select(
        Job.id, Job.state, Job.params, Job.result, Job.error, Job.progress, Job.worker_pid,
        Job.worker_host).where(Job.id.in_(chunk_ids)))}
    db.session.commit()
    return [found[chunk_id] for chunk_id in chunk_ids]


def _report(reporter, rows: list, label: str, total_images: int, elapsed: float) -> None:
    """Progress over all workers' chunks, by images (a running chunk by its own progress), with
    the number of workers and the time left at the rate so far."""
    done_chunks = sum(row.state == "done" for row in rows)
    images = sum(row.params["images"] * (1.0 if row.state == "done" else
                                         (row.progress or 0.0) if row.state == "running" else 0.0)
                 for row in rows)
    workers = len({(row.worker_host, row.worker_pid) for row in rows
                   if row.state in ("running", "done") and row.worker_pid is not None})
    fraction = images / max(total_images, 1)
    left = f", about {elapsed * (1 - fraction) / fraction:.0f} s left" if 0 < fraction < 1 else ""
    reporter.progress(fraction, f"{label}: {done_chunks} of {len(rows)} chunks done "
                                f"({images:.0f} of {total_images} images, {workers} "
                                f"worker{'s' if workers != 1 else ''}{left})")
