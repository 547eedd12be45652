"""What a device maker embeds, typed: the names `thingsdk` itself exports.

    import thingsdk
    device = thingsdk.load_device("device.toml", sources={"coffee-beans": Hopper()})

`thingsdk` imports them from here on first use, so `import thingsdk.core...` stays light. The
README's "Embedding thingsdk" walks a Pi device and a board; docs/configuration.md is the
device.toml they read.
"""

from thingsdk.core.agent import LEVEL, USAGE, Slot
from thingsdk.core.consumable import DAY, Consumable, RateEstimator
from thingsdk.crypto import Ed25519Signer, load_signer
from thingsdk.device.config import ConfigError
from thingsdk.device.config import load as load_device
from thingsdk.device.runtime import Device
from thingsdk.device.state import StateError, StateFolder
from thingsdk.mqtt import Backoff, Transport, device_transport
from thingsdk.owner import read_public_key
from thingsdk.sensors import Sensor
from thingsdk.storage import CheckpointError

__all__ = [
    "DAY", "LEVEL", "USAGE", "Backoff", "CheckpointError", "ConfigError", "Consumable", "Device",
    "Ed25519Signer", "RateEstimator", "Sensor", "Slot", "StateError", "StateFolder", "Transport",
    "device_transport", "load_device", "load_signer", "read_public_key",
]
