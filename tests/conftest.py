import os

import pytest

from fixtures import broker, persistent_broker, pki, world  # noqa: F401 (shared with hil/)
from hypothesis import settings

# CI runs on shared 2-core machines: no per-example deadlines, and a fixed example sequence so a
# run can be repeated exactly. Local runs keep exploring new examples.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def unix32():
    """The stock MicroPython unix port built as a board is (tests/unix_port.py; skipped without
    the MicroPython source, except in CI)."""
    import unix_port

    return unix_port.for_tests(unix_port.stock, log=True)
