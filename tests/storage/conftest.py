from __future__ import annotations

import time

import pytest
import time_machine


@pytest.fixture
def clock():
    """Frozen time that tests move forward with ``clock.shift(seconds)``."""
    with time_machine.travel(time.time(), tick=False) as traveller:
        yield traveller
