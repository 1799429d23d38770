"""Search: find a project's images by class, confidence, status and metadata (no views here).

- index.py: the write side. One row per image (search_image: consensus label, the serving
  model's prediction, the class and class confidence they give, a status) and its metadata
  values in indexed form (search_column, search_value, search_meta). Every write raises the
  project's generation (search_state) in the same transaction.
- snapshot.py: the read side. Each process holds the search columns of a project as arrays
  and catches up by reading only the rows whose generation is newer than its own.
- query.py: request parameters -> a checked SearchQuery (errors name the bad parameter).
- engine.py: a SearchQuery on a snapshot -> matching images, facet counts, one sorted page.
- results.py, groups.py, service.py: items, CSV rows, the detail, the groups view, and the
  functions the views call.
"""
