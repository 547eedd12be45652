"""SHA-512 (FIPS 180-4) in Python: MicroPython's hashlib has sha256 only.

Written for MicroPython, where ints above 2**30 are heap-allocated bignums and every operation on
them allocates: the rounds use as few int operations as possible. A rotation of a 64-bit word x
is read off x * (2**64 + 1), which holds two copies of x side by side; masking to 64 bits happens
once per new word, since the low 64 bits of sums and xors do not depend on the bits above.
"""

import struct

_K = (
    0x428A2F98D728AE22, 0x7137449123EF65CD, 0xB5C0FBCFEC4D3B2F, 0xE9B5DBA58189DBBC,
    0x3956C25BF348B538, 0x59F111F1B605D019, 0x923F82A4AF194F9B, 0xAB1C5ED5DA6D8118,
    0xD807AA98A3030242, 0x12835B0145706FBE, 0x243185BE4EE4B28C, 0x550C7DC3D5FFB4E2,
    0x72BE5D74F27B896F, 0x80DEB1FE3B1696B1, 0x9BDC06A725C71235, 0xC19BF174CF692694,
    0xE49B69C19EF14AD2, 0xEFBE4786384F25E3, 0x0FC19DC68B8CD5B5, 0x240CA1CC77AC9C65,
    0x2DE92C6F592B0275, 0x4A7484AA6EA6E483, 0x5CB0A9DCBD41FBD4, 0x76F988DA831153B5,
    0x983E5152EE66DFAB, 0xA831C66D2DB43210, 0xB00327C898FB213F, 0xBF597FC7BEEF0EE4,
    0xC6E00BF33DA88FC2, 0xD5A79147930AA725, 0x06CA6351E003826F, 0x142929670A0E6E70,
    0x27B70A8546D22FFC, 0x2E1B21385C26C926, 0x4D2C6DFC5AC42AED, 0x53380D139D95B3DF,
    0x650A73548BAF63DE, 0x766A0ABB3C77B2A8, 0x81C2C92E47EDAEE6, 0x92722C851482353B,
    0xA2BFE8A14CF10364, 0xA81A664BBC423001, 0xC24B8B70D0F89791, 0xC76C51A30654BE30,
    0xD192E819D6EF5218, 0xD69906245565A910, 0xF40E35855771202A, 0x106AA07032BBD1B8,
    0x19A4C116B8D2D0C8, 0x1E376C085141AB53, 0x2748774CDF8EEB99, 0x34B0BCB5E19B48A8,
    0x391C0CB3C5C95A63, 0x4ED8AA4AE3418ACB, 0x5B9CCA4F7763E373, 0x682E6FF3D6B2B8A3,
    0x748F82EE5DEFB2FC, 0x78A5636F43172F60, 0x84C87814A1F0AB72, 0x8CC702081A6439EC,
    0x90BEFFFA23631E28, 0xA4506CEBDE82BDE9, 0xBEF9A3F7B2C67915, 0xC67178F2E372532B,
    0xCA273ECEEA26619C, 0xD186B8C721C0C207, 0xEADA7DD6CDE0EB1E, 0xF57D4F7FEE6ED178,
    0x06F067AA72176FBA, 0x0A637DC5A2C898A6, 0x113F9804BEF90DAE, 0x1B710B35131C471B,
    0x28DB77F523047D84, 0x32CAAB7B40C72493, 0x3C9EBE0A15C9BEBC, 0x431D67C49C100D4C,
    0x4CC5D4BECB3E42B6, 0x597F299CFC657E2A, 0x5FCB6FAB3AD6FAEC, 0x6C44198C4A475817,
)

_IV = (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
)

_MASK = 0xFFFFFFFFFFFFFFFF
_TWICE = 0x10000000000000001  # x * _TWICE is x twice: rotr(x, n) == (x * _TWICE >> n) & _MASK


def _schedule(block):
    """The 80 message words of one 128-byte block (in a list made whole at once: grown word by
    word it would ask a board's fragmented heap for ever larger blocks)."""
    w = [0] * 80
    w[:16] = struct.unpack(">16Q", block)
    for t in range(16, 80):
        x = w[t - 15] * _TWICE
        y = w[t - 2] * _TWICE
        s0 = (x >> 1) ^ (x >> 8) ^ (x >> 71)  # rotr 1, rotr 8, shr 7
        s1 = (y >> 19) ^ (y >> 61) ^ (y >> 70)  # rotr 19, rotr 61, shr 6
        w[t] = (s1 + w[t - 7] + s0 + w[t - 16]) & _MASK
    return w


def _compress(state, block):
    """The state after absorbing one 128-byte block."""
    w = _schedule(block)
    k = _K
    mask = _MASK
    twice = _TWICE
    a, b, c, d, e, f, g, h = state
    bc = b ^ c
    for t in range(80):
        x = e * twice
        t1 = h + ((x >> 14) ^ (x >> 18) ^ (x >> 41)) + (g ^ (e & (f ^ g))) + k[t] + w[t]
        x = a * twice
        ab = a ^ b
        t2 = ((x >> 28) ^ (x >> 34) ^ (x >> 39)) + (b ^ (ab & bc))  # Maj(a, b, c)
        bc = ab  # next round's b ^ c
        h = g
        g = f
        f = e
        e = (d + t1) & mask
        d = c
        c = b
        b = a
        a = (t1 + t2) & mask
    return (
        (state[0] + a) & mask, (state[1] + b) & mask, (state[2] + c) & mask, (state[3] + d) & mask,
        (state[4] + e) & mask, (state[5] + f) & mask, (state[6] + g) & mask, (state[7] + h) & mask,
    )


def sha512(*parts):
    """The 64-byte SHA-512 digest of the concatenated parts (bytes-like), hashed where they lie:
    no copy of the message is made, only one 128-byte block buffer."""
    state = _IV
    block = bytearray(128)
    used = n = 0
    for part in parts:
        view = memoryview(part)
        size = len(view)
        n += size
        i = 0
        while i < size:
            take = min(128 - used, size - i)
            block[used:used + take] = view[i:i + take]
            used += take
            i += take
            if used == 128:
                state = _compress(state, block)
                used = 0
    block[used] = 0x80
    used += 1
    if used > 112:
        block[used:] = bytes(128 - used)
        state = _compress(state, block)
        used = 0
    block[used:112] = bytes(112 - used)
    block[112:] = (n * 8).to_bytes(16, "big")
    return struct.pack(">8Q", *_compress(state, block))
