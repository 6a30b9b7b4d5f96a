"""This project runs the plugin's example on its own locally built images (no registry is reachable in CI).

A user's project needs none of this: the plugin's defaults are the official images, and a missing
engine skips. Overriding the plugin's fixtures is also how a project pins its own images.
"""

from __future__ import annotations

import os

import pytest

from tests import images


@pytest.fixture(scope="session")
def regogate_opa_image() -> str:
    return images.OPA_IMAGE


@pytest.fixture(scope="session")
def regogate_redis_image() -> str:
    return images.REDIS_IMAGE


@pytest.fixture(scope="session")
def regogate_require_containers() -> bool:
    """In this project's CI the engine must work: a container that cannot run is a failure there."""
    return os.environ.get("CI", "").lower() == "true"
