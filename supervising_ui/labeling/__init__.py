"""Labeling: hand images to labelers, store their decisions, show the model's suggestions.

views.py        the labeling page and JSON API (blueprint "labeling"): parse, call, respond
access.py       who may label which project and see which image; the lookups that check it
settings.py     a project's labeling settings and serving model, in one query; LabelingError
picking.py      which image a labeler gets next (held lease, uncertainty, audit, random, Later)
candidates.py   the conditions of an image a labeler may be handed (both databases)
pg_claim.py     PostgreSQL: picking.py's whole chain and the claim as one statement
leases.py       the lease that holds an image, claims, and SQLite's one-writer-at-a-time lock
decisions.py    submit a label (once per request_id), put an image off (Later), undo
suggestions.py  the serving model's suggestion for an image, and which ones are hidden
progress.py     the labeler's and the project's counts
payloads.py     what the API answers for a handed-out image and a stored label

Services commit their own writes (and roll back their own refused writes); views never do.
"""
