"""Database models (SQLAlchemy 2 typed mappings), one module per domain, every name here.

Import tables from this package (``from ..models import Image``): the modules below it are
only where each table is written down.
"""
from .accounts import ROLES, ApiToken, LoginAttempt, ProjectMember, User
from .boxes import BOX_SHAPES, BOX_SOURCES, LANDMARK_STATES, Box, Landmark
from .common import new_random_key, utcnow
from .images import Image, ImportBatch
from .jobs import JOB_STATES, Job
from .labels import Label, Skip
from .learning import ModelVersion, Prediction
from .observations import (
    LABEL_KINDS,
    OBSERVATION_STATES,
    Observation,
    ObservationTile,
    TileDone,
    TileLease,
)
from .projects import SERVING_ORDERS, LabelClass, Project
from .review import (
    CONSENSUS_METHODS,
    REVIEW_DECISIONS,
    ConsensusRun,
    ImageConsensus,
    LabelIssue,
    Review,
)
from .search import SearchColumn, SearchImage, SearchMeta, SearchState, SearchValue

__all__ = [
    "ROLES", "ApiToken", "LoginAttempt", "ProjectMember", "User", "new_random_key", "utcnow",
    "Image", "ImportBatch", "JOB_STATES", "Job", "Label", "Skip", "ModelVersion", "Prediction",
    "SERVING_ORDERS", "LabelClass", "Project", "SearchColumn", "SearchImage", "SearchMeta",
    "SearchState", "SearchValue", "CONSENSUS_METHODS", "REVIEW_DECISIONS", "ConsensusRun",
    "ImageConsensus", "LabelIssue", "Review", "BOX_SHAPES", "BOX_SOURCES", "LANDMARK_STATES",
    "Box", "Landmark",
    "LABEL_KINDS", "OBSERVATION_STATES", "Observation", "ObservationTile", "TileDone", "TileLease",
]
