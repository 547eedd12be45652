"""A fake `network` for the virtual board: a WLAN station is connected while the rig's fake
network is up (it reconnects by itself, as an ESP32 does). Constants have ESP32's values."""

import _vboard_js as _js

STA_IF, AP_IF = 0, 1
STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP = 1000, 1001, 1010
STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD = 201, 202
_interfaces = {}


class WLAN:
    def __init__(self, interface=STA_IF):
        if interface not in _interfaces:
            _interfaces[interface] = {"active": False, "ssid": None}
        self._state = _interfaces[interface]

    def active(self, on=None):
        if on is None:
            return self._state["active"]
        self._state["active"] = bool(on)
        if not on:
            self._state["ssid"] = None
        return None

    def connect(self, ssid=None, key=None, **kwargs):
        if not self._state["active"]:
            raise OSError("Wifi Not Started")
        self._state["ssid"] = ssid

    def disconnect(self):
        self._state["ssid"] = None

    def isconnected(self):
        return self.status() == STAT_GOT_IP

    def status(self, param=None):
        if param == "rssi":
            return -60
        if not self._state["active"] or self._state["ssid"] is None:
            return STAT_IDLE
        return STAT_GOT_IP if _js.net_up() else STAT_NO_AP_FOUND

    def ifconfig(self, config=None):
        if self.isconnected():
            return ("192.0.2.10", "255.255.255.0", "192.0.2.1", "192.0.2.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kwargs):
        if args == ("mac",):
            return b"\x02vbrd\x01"
        return None
