"""Validation rules shared by the API and other entry points (CLI, dispatcher)."""

from __future__ import annotations

import re

QUEUE_NAME = re.compile(r"^[a-zA-Z0-9_\-.]{1,64}\Z")
PROJECT_ID_MAX_LEN = 256


def valid_queue_name(name: str) -> bool:
    """Zaqar's rule: ASCII letters, digits, ``_``, ``-`` and ``.``, 1..64."""
    return bool(QUEUE_NAME.match(name))


def valid_project(project: str) -> bool:
    return len(project) <= PROJECT_ID_MAX_LEN
