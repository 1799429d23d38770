"""The JSON API fuzzed by schemathesis from its OpenAPI document, against a live server, as an
admin and as a labeler, on the suite's engine (SQLite, or PostgreSQL in CI): no server error
and no response outside the document. benchmarks/api_fuzz.py runs the same at a larger size."""
import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("schemathesis")

# Requests per operation, token and generation mode: the bounded run keeps `make test` short.
EXAMPLES = 6
BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "api_fuzz.py"


def fuzzing_module():
    """Load benchmarks/api_fuzz.py (the harness) as a module."""
    spec = importlib.util.spec_from_file_location("api_fuzz", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_fuzzed_api_answers_no_server_error_and_keeps_to_its_document(app):
    fuzzing = fuzzing_module()
    tokens = fuzzing.seed_instance(app)
    document = fuzzing.openapi_document(app, tokens["admin"])
    with fuzzing.live_server(app) as base_url:
        tally = fuzzing.fuzz(document, base_url, tokens, EXAMPLES)
    assert tally.requests >= 150
    assert (tally.server_errors, tally.violations) == (0, 0), "\n\n".join(tally.examples)
