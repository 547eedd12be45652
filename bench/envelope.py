"""Signed messages: bytes on the wire, and sign/verify cost through thingsdk against the raw primitive.

    python bench/envelope.py [--rounds N]

Prints, from one run:
- the size of a typical signed order as COSE_Sign1 over deterministic CBOR, next to the same
  content as JSON signed with compact JWS (EdDSA);
- CPython sign and verify per message through thingsdk next to `cryptography`'s raw Ed25519 on the
  same bytes, measured interleaved, with the ratio of their rates (target: verify >= 80 %);
- the CPython codec per direction: decoding with the core (what thingsdk.codec does) next to
  cbor2's own decoder without any of the contract's checks, and encoding with cbor2 (what
  thingsdk.codec does) next to the core;
- sign and verify on the MicroPython WebAssembly port (targets: sign <= 15 ms, verify <= 25 ms).
"""

import argparse
import base64
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cbor2

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "portable")]

from samples import TS, example_bodies  # noqa: E402
from thingsdk import codec  # noqa: E402
from thingsdk.core import cbor as core_codec  # noqa: E402
from thingsdk.core import cose, envelope, messages  # noqa: E402
from thingsdk.crypto import Ed25519Signer  # noqa: E402

DEVICE = Ed25519Signer.from_seed(bytes(range(32)))
VENDOR = Ed25519Signer.from_seed(bytes(range(1, 33)))


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws_order(body):
    """The same order as a JSON API would carry it, signed as compact JWS (RFC 7515, EdDSA)."""
    content = {
        "v": 1, "type": "order", "id": b64(b"\x09" * 16), "kid": DEVICE.kid.hex(), "seq": 9,
        "ts": TS, "exp": TS + 3600, "to": VENDOR.kid.hex(),
        "body": {k: (b64(v) if isinstance(v, bytes) else v) for k, v in body.items()},
    }
    header = {"alg": "EdDSA", "kid": DEVICE.kid.hex(), "typ": "thingsdk+json"}
    signing_input = b64(json.dumps(header, separators=(",", ":")).encode()) + "." + b64(
        json.dumps(content, separators=(",", ":")).encode())
    return signing_input + "." + b64(DEVICE.sign(signing_input.encode()))


def per_op_us(fn, n):
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def interleaved(pairs, rounds, n):
    """Median microseconds per call of each function, measured in alternating rounds."""
    samples = {name: [] for name, _ in pairs}
    for _ in range(rounds):
        for name, fn in pairs:
            samples[name].append(per_op_us(fn, n))
    return {name: statistics.median(v) for name, v in samples.items()}


def cpython_figures(rounds):
    body = example_bodies()[messages.ORDER]
    seq = iter(range(10, 10**9))
    sealed = envelope.seal(messages.ORDER, body, DEVICE, VENDOR.kid, 9, TS, b"\x09" * 16, codec)
    protected, _, payload, signature = codec.loads(sealed).value
    to_be_signed = codec.dumps(["Signature1", protected, b"", payload])
    raw_private, raw_public = DEVICE._key, DEVICE.verifier()._key
    keys = {DEVICE.kid: DEVICE.verifier()}
    inbox = envelope.Inbox(VENDOR.kid, keys, codec)
    decoded_payload = codec.loads(payload)

    def seal():
        envelope.seal(messages.ORDER, body, DEVICE, VENDOR.kid, next(seq), TS, b"\x09" * 16, codec)

    times = interleaved([
        ("raw sign", lambda: raw_private.sign(to_be_signed)),
        ("thingsdk seal", seal),
        ("raw verify", lambda: raw_public.verify(signature, to_be_signed)),
        ("thingsdk verify", lambda: cose.verify_sign1(sealed, keys, codec)),
        ("thingsdk open", lambda: inbox.open(sealed, TS + 1)),
        ("decode, core", lambda: core_codec.loads(sealed)),
        ("decode, bare cbor2", lambda: cbor2.loads(sealed)),
        ("encode, cbor2 edge", lambda: codec.dumps(decoded_payload)),
        ("encode, core", lambda: core_codec.dumps(decoded_payload)),
    ], rounds, 200)
    return sealed, times


def micropython_figures():
    cmd = ["node", str(ROOT / "tests" / "mpy" / "run.mjs"), "--mount",
           "%s:/lib/thingsdk" % (ROOT / "thingsdk"), "--mount",
           "%s:/lib/portable" % (ROOT / "tests" / "portable"),
           str(ROOT / "bench" / "mpy_ed25519.py")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise SystemExit("MicroPython run failed:\n" + proc.stderr)
    return dict(line.split(None, 1) for line in proc.stdout.splitlines() if line.strip())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    sealed, t = cpython_figures(args.rounds)
    jws = jws_order(example_bodies()[messages.ORDER])
    print("bytes on the wire, one signed order")
    print("  COSE_Sign1 + deterministic CBOR   %5d bytes" % len(sealed))
    print("  compact JWS + JSON                %5d bytes   (%.2fx the COSE size)"
          % (len(jws), len(jws) / len(sealed)))
    print()
    print("CPython, microseconds per message (median of %d interleaved rounds)" % args.rounds)
    for name in ("raw sign", "thingsdk seal", "raw verify", "thingsdk verify", "thingsdk open"):
        print("  %-16s %8.1f us" % (name, t[name]))
    print("  seal rate vs raw sign            %5.0f %%" % (100 * t["raw sign"] / t["thingsdk seal"]))
    verify_pct = 100 * t["raw verify"] / t["thingsdk verify"]
    print("  verify rate vs raw verify        %5.0f %%   (target >= 80 %%: %s)"
          % (verify_pct, "met" if verify_pct >= 80 else "NOT met"))
    print("  open rate vs raw verify          %5.0f %%   (signature, catalog, recipient, replay)"
          % (100 * t["raw verify"] / t["thingsdk open"]))
    print()
    print("CPython codec, microseconds (a whole COSE_Sign1 decoded; its payload encoded)")
    for name in ("decode, core", "decode, bare cbor2", "encode, cbor2 edge", "encode, core"):
        print("  %-19s %8.2f us" % (name, t[name]))
    print()
    mp = micropython_figures()
    sign_ms, verify_ms = float(mp["sign_ms"]), float(mp["verify_ms"])
    print("MicroPython (WebAssembly port), pure-Python Ed25519, 200-byte message")
    print("  sign     %6.1f ms   (target <= 15 ms: %s)" % (sign_ms, "met" if sign_ms <= 15 else "NOT met"))
    print("  verify   %6.1f ms   (target <= 25 ms: %s)" % (verify_ms, "met" if verify_ms <= 25 else "NOT met"))
    for key in sorted(mp):
        if key not in ("sign_ms", "verify_ms"):
            print("  %-26s %s" % (key, mp[key]))


if __name__ == "__main__":
    main()
