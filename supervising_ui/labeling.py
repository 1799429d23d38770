"""The labeling page and its JSON endpoints."""
from flask import Blueprint

blueprint = Blueprint("labeling", __name__)
