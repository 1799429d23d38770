"""Boxes on observations: drawing them on tiles, importing them as a named annotator, merging
them into consensus landmarks in the background, machine proposals, review, crops of the
landmarks as project images, and export.

The algorithms (merge, proposals, crops, file formats) live in ``supervising_ui.landmarks``;
this package stores boxes and landmarks and calls them.
"""


class BoxError(ValueError):
    """A box or landmark request that cannot be carried out: a message and an HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status
