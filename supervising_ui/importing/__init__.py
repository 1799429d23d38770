"""Image import: files, zips, folders and manifests -> managed storage, with a report.

An import is planned first (sources.py: which files, with which metadata and labels from a
manifest read by manifest.py; what is refused already) and then run (runner.py): each file is
read, hashed, checked against the project's existing content hashes (loaded once), decoded by
the one validator in storage.py, written to managed storage and only then added as a row;
rows are committed in batches. A killed import thus leaves whole batches behind, and running
it again adds only what is missing. Each run is recorded as an import batch (batches.py) that
stamps the images it adds. Browser imports (uploads.py) stage their files and run as a
background job.
"""


class ImportRefused(ValueError):
    """An import request that cannot start at all, with a message for the user."""
