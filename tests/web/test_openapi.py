"""The API's OpenAPI document: served at /api/openapi.json, and listing exactly the /api routes."""
import json
import re
from importlib import resources

from supervising_ui.accounts.users import create_api_token
from supervising_ui.extensions import db
from supervising_ui.models import User

METHODS = {"get", "post", "put", "patch", "delete"}


def document() -> dict:
    return json.loads(resources.files("supervising_ui.web").joinpath("openapi.json").read_text())


def test_every_api_route_is_in_the_document_and_nothing_else(app):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", r"{\1}", rule.rule)
            routes |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in document()["paths"].items()
                  for method in item if method in METHODS}
    assert routes == documented
    assert len(routes) >= 13


def test_every_path_parameter_is_documented_as_an_id(app):
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            names = {parameter["name"] for parameter in operation.get("parameters", [])
                     if parameter["in"] == "path"}
            assert names == set(re.findall(r"{([a-z_]+)}", path)), (path, method)
            assert operation["responses"], (path, method)


def test_the_document_is_served_to_callers_of_the_api(app, client, users):
    with app.app_context():
        token = create_api_token(db.session.get(User, users["lee"]))
    response = client.get("/api/openapi.json", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == document()
    assert client.get("/api/openapi.json").status_code == 401
