"""thingsdk: an SDK for things that buy for themselves.

A device maker's names are exported here, typed (thingsdk.api holds them):

    from thingsdk import Device, Slot, Consumable, load_device, ...

They are imported on first use: `import thingsdk.core...` loads nothing else, and a board, which
has this package for its core only, never loads them.
"""

__version__ = "0.1.0"

TYPE_CHECKING = 0  # true for type checkers (pyright, mypy): they read the names from here
if TYPE_CHECKING:
    from thingsdk.api import *  # noqa: F401,F403

# thingsdk.api.__all__ (a test keeps the two equal): known here, so that `from thingsdk import
# codec` asks for a submodule without loading them all.
_PUBLIC = (
    "DAY", "LEVEL", "USAGE", "Backoff", "CheckpointError", "ConfigError", "Consumable", "Device",
    "Ed25519Signer", "RateEstimator", "Sensor", "Slot", "StateError", "StateFolder", "Transport",
    "device_transport", "load_device", "load_signer", "read_public_key",
)


def __getattr__(name):
    """PEP 562: a public name imported from thingsdk.api when first asked for."""
    if name not in _PUBLIC:
        raise AttributeError("module 'thingsdk' has no attribute %r" % name)
    import importlib

    value = globals()[name] = getattr(importlib.import_module("thingsdk.api"), name)
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
