"""Projects: creating them and their class lists (service.py), the admin's project pages
(views.py), the export of labels (export.py) and the demo project (demo.py)."""
