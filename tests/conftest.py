import os

from fixtures import broker, persistent_broker, pki, world  # noqa: F401 (shared with hil/)
from hypothesis import settings

# CI runs on shared 2-core machines: no per-example deadlines, and a fixed example sequence so a
# run can be repeated exactly. Local runs keep exploring new examples.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

