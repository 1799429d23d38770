"""Whole observations: import with PDS labels, deep-zoom tiles, tiles as work units, the viewer."""
