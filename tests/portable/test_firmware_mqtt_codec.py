"""The firmware MQTT client's packet codec (firmware/lib/mqtt.py), on CPython and MicroPython."""

import mqtt
from check import raises


def test_remaining_length_at_each_boundary():
    cases = [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
             (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"), (2097152, b"\x80\x80\x80\x01"),
             (268435455, b"\xff\xff\xff\x7f")]
    for n, encoded in cases:
        assert mqtt.encode_length(n) == encoded
        assert mqtt.decode_length(encoded + b"\x99") == (n, len(encoded))
    raises(mqtt.MQTTError, mqtt.encode_length, 268435456)
    raises(mqtt.MQTTError, mqtt.encode_length, -1)
    raises(mqtt.MQTTError, mqtt.decode_length, b"\xff\xff\xff\xff\x01")
    raises(mqtt.MQTTError, mqtt.decode_length, b"\x80")


def test_connect_packet_with_will_and_user():
    got = mqtt.connect_packet("dev", 30, ("p/dev", b"offline", True), user="u")
    body = b"\x00\x04MQTT\x04" + bytes([0x80 | 0x20 | 0x08 | 0x04]) + b"\x00\x1e" \
        + b"\x00\x03dev" + b"\x00\x05p/dev" + b"\x00\x07offline" + b"\x00\x01u"
    assert bytes(got) == b"\x10" + bytes([len(body)]) + body
    # clean_session is off: the broker keeps the session
    assert not got[9] & 0x02
    assert bytes(mqtt.connect_packet("d", 60)) == b"\x10\x0d\x00\x04MQTT\x04\x00\x00\x3c\x00\x01d"


def test_publish_round_trips_through_the_parser():
    payload = bytes(range(256)) * 4  # ~1 KiB, the firmware's message size
    pkt = mqtt.publish_head("thingsdk/v1/up/x", len(payload), qos=1, retain=True, pid=513) + payload
    assert pkt[0] == 0x33
    length, used = mqtt.decode_length(bytes(pkt[1:5]))
    body = bytes(pkt[1 + used:])
    assert length == len(body)
    assert mqtt.parse_publish(pkt[0], body) == ("thingsdk/v1/up/x", 1, 513, payload)
    assert mqtt.parse_publish(pkt[0], memoryview(body)) == ("thingsdk/v1/up/x", 1, 513, payload)
    dup = mqtt.publish_head("t", 1, qos=1, pid=1, dup=True)
    assert dup[0] == 0x3a
    zero = mqtt.publish_head("t", 2) + b"hi"
    assert bytes(zero) == b"\x30\x05\x00\x01thi"
    assert mqtt.parse_publish(zero[0], bytes(zero[2:])) == ("t", 0, 0, b"hi")


def test_malformed_publishes_are_refused():
    raises(mqtt.MQTTError, mqtt.parse_publish, 0x30, b"\x00")
    raises(mqtt.MQTTError, mqtt.parse_publish, 0x30, b"\x00\x09abc")
    raises(mqtt.MQTTError, mqtt.parse_publish, 0x32, b"\x00\x01t\x00")  # QoS 1 without a pid
    raises(mqtt.MQTTError, mqtt.parse_publish, 0x34, b"\x00\x01t\x00\x01")  # QoS 2


def test_subscribe_packet():
    assert bytes(mqtt.subscribe_packet(7, "a/b")) == b"\x82\x08\x00\x07\x00\x03a/b\x01"


def test_strings_are_utf8_and_bounded():
    assert mqtt.string("é") == b"\x00\x02\xc3\xa9"
    raises(mqtt.MQTTError, mqtt.string, b"x" * 65536)
