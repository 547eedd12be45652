"""CPython edge: IANA time-zone offsets for the core's policy checks (quiet hours)."""

import datetime
import zoneinfo


def zone_offset(name, now):
    """The offset of an IANA time zone at unix time now, in minutes east of UTC; None if unknown."""
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        return None
    return int(datetime.datetime.fromtimestamp(now, zone).utcoffset().total_seconds()) // 60
