"""Shared test configuration: Hypothesis profiles and the --update-generated option."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]

# profiles on top of Hypothesis' own "ci" profile (derandomized, no database)
_CI = settings.get_profile("ci")
settings.register_profile(
    "quick",
    parent=_CI,
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    parent=_CI,
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-generated",
        action="store_true",
        default=False,
        help="rewrite generated/ from derivations/ instead of failing the golden test",
    )


@pytest.fixture
def project_root() -> Path:
    return ROOT
