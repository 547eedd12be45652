"""thingsdk.mqtt_properties: paho's MQTT 5 Properties made cheap where no property is set, and
the same as paho's own everywhere: packed and read back, empty or not, against a pristine copy
of paho's class. (tests/test_mqtt.py talks MQTT 5 to a real mosquitto with it installed: PUBLISH
and PUBACK without properties, CONNECT and CONNACK with them, PUBACKs that refuse.)"""

import importlib.util
import sys

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from thingsdk import mqtt, mqtt_properties  # noqa: F401 (mqtt installs it as it loads)


@pytest.fixture(scope="module")
def pristine():
    """paho's Properties as paho has it: its module loaded again, apart."""
    spec = importlib.util.find_spec("paho.mqtt.properties")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not getattr(module.Properties, "_thingsdk_light", False)
    return module.Properties


def _filled(cls, packet_type):
    props = cls(packet_type)
    if packet_type == PacketTypes.PUBLISH:
        props.MessageExpiryInterval = 3600
        props.UserProperty = ("kid", "00aa")
        props.UserProperty = ("re", "01")
        props.CorrelationData = b"\x00\x01"
    else:
        props.SessionExpiryInterval = 604800
    return props


def test_it_is_installed_when_thingsdk_talks_mqtt():
    assert "thingsdk.mqtt" in sys.modules
    assert Properties._thingsdk_light is True
    assert mqtt_properties.install() is True  # again: nothing more to do


@pytest.mark.parametrize("packet_type", [PacketTypes.PUBLISH, PacketTypes.PUBACK,
                                         PacketTypes.CONNECT])
def test_no_properties_pack_and_read_back_as_paho_does(pristine, packet_type):
    light, paho = Properties(packet_type), pristine(packet_type)
    assert light.isEmpty() and paho.isEmpty()
    assert light.pack() == paho.pack() == b"\x00"
    for data in (b"\x00", b"\x00payload after the properties", bytearray(b"\x00rest")):
        got, used = light.unpack(data)
        want, used_by_paho = paho.unpack(data)
        assert got is light and used == used_by_paho == 1
        assert light.isEmpty() and vars(light).keys() == vars(want).keys()
    light.clear()
    assert light.isEmpty() and str(light) == str(paho) == "[]"


@pytest.mark.parametrize("packet_type", [PacketTypes.PUBLISH, PacketTypes.CONNECT])
def test_properties_that_are_set_go_through_pahos_own_code(pristine, packet_type):
    light, paho = _filled(Properties, packet_type), _filled(pristine, packet_type)
    assert not light.isEmpty() and not paho.isEmpty()
    packed = light.pack()
    assert packed == paho.pack() and packed != b"\x00"
    back, used = Properties(packet_type).unpack(packed + b"after")
    want, used_by_paho = pristine(packet_type).unpack(packed + b"after")
    assert used == used_by_paho == len(packed)
    assert back.json() == want.json() == light.json()
    back.clear()
    assert back.isEmpty() and back.pack() == b"\x00"
    with pytest.raises(Exception, match="Property name must be one of"):
        back.NoSuchProperty = 1  # paho's own checks still apply


def test_a_properties_class_of_another_shape_is_left_as_it_is():
    class Other:
        def __init__(self, packetType):
            self.packetType, self.kinds = packetType, {}

        def isEmpty(self):  # noqa: N802
            return True

        clear = pack = unpack = isEmpty

    methods = dict(vars(Other))
    assert mqtt_properties.install(Other) is False
    assert dict(vars(Other)) == methods

