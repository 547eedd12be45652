"""CBOR's floats, loaded only when one is encoded or a float16 decoded: protocol messages carry
none (thingsdk/core/cbor.py says why), so a board keeps this code out of its heap. Portable.

float16 is converted by hand, as some ports' struct lacks the "e" format.
"""

import struct


def encode_float(x):
    """x in its shortest CBOR encoding that holds it exactly (float16, float32 or float64)."""
    if x != x:
        return b"\xf9\x7e\x00"
    try:
        single = struct.pack(">f", x)
    except OverflowError:  # CPython; MicroPython packs inf instead, which the check below refuses
        return b"\xfb" + struct.pack(">d", x)
    if struct.unpack(">f", single)[0] != x:
        return b"\xfb" + struct.pack(">d", x)
    half = _half_bits(int.from_bytes(single, "big"))
    if half is None:
        return b"\xfa" + single
    return struct.pack(">BH", 0xF9, half)


def _half_bits(bits):
    """The float16 bits of the float32 with these bits, or None if float16 cannot hold it."""
    sign = (bits >> 16) & 0x8000
    exp = ((bits >> 23) & 0xFF) - 127
    fraction = bits & 0x7FFFFF
    if exp == -127 and fraction == 0:
        return sign  # zero
    if exp == 128:
        return sign | 0x7C00  # infinity (NaN never gets here)
    if exp > 15 or exp < -24:
        return None
    if exp >= -14:  # normal: keep the top 10 fraction bits
        shift, base = 13, (exp + 15) << 10
    else:  # subnormal: the implicit leading 1 becomes explicit
        shift, base, fraction = -1 - exp, 0, fraction | 0x800000
    if fraction & ((1 << shift) - 1):
        return None
    return sign | base | (fraction >> shift)


def half_to_float(h):
    """The float of float16 bits h."""
    exp, fraction = (h >> 10) & 0x1F, h & 0x3FF
    if exp == 31:
        value = float("nan") if fraction else float("inf")
    else:
        value = (fraction | 0x400 if exp else fraction) * 2.0 ** (max(exp, 1) - 25)
    return -value if h & 0x8000 else value
