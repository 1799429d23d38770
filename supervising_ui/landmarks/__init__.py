"""Landmark algorithms on whole observations: boxes, their merge, proposals, crops, formats.

Pure functions over numpy and Pillow: no Flask, no SQLAlchemy, no database (the import
contracts in pyproject.toml say so). The web side stores boxes and calls these.
"""
