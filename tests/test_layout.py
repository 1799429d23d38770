"""The layout rules of docs/architecture.md that import-linter cannot see: views run no query,
and no module grows past 400 lines. (`make lint` runs import-linter for the import rule.)"""
import ast
from pathlib import Path

import supervising_ui

PACKAGE = Path(supervising_ui.__file__).parent
# What a view module may not touch: the session, or statements of its own.
QUERY_NAMES = {"db", "select", "update", "delete", "insert", "text", "func"}
LONGEST_MODULE = 400


def imported_names(tree: ast.Module) -> set[str]:
    """Return the names a module imports: 'db', 'select', 'sqlalchemy', 'extensions' ..."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return names


def test_view_modules_run_no_query():
    views = sorted(PACKAGE.rglob("views.py"))
    assert len(views) >= 8, "every domain's blueprint lives in its views.py"
    querying = {str(path.relative_to(PACKAGE)): sorted(
        imported_names(ast.parse(path.read_text())) & (QUERY_NAMES | {"sqlalchemy", "extensions"}))
        for path in views}
    assert {path: names for path, names in querying.items() if names} == {}


def test_blueprints_live_in_views_modules():
    defining = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                      if "Blueprint(" in path.read_text())
    assert defining and all(path.endswith("views.py") for path in defining), defining


def test_no_module_is_longer_than_400_lines():
    lengths = {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
               for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts}
    assert {path: n for path, n in lengths.items() if n > LONGEST_MODULE} == {}
