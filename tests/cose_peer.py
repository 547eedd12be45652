"""python-cwt as an independent COSE/CWT peer, in its own environment.

python-cwt pins cbor2 below 6 and cannot decode with cbor2 6, which thingsdk requires, so it
lives in .venv-peer (made by .ci/setup) and the tests talk to it through this file run as a
script: one JSON request per line on stdin, one JSON answer per line on stdout, bytes as hex.

    {"op": "sign", "seed": .., "kid": .., "payload": .., "kid_protected": true} -> {"data": ..}
    {"op": "verify", "public": .., "kid": .., "data": ..} -> {"payload": ..} or {"error": ..}
"""

import json
import subprocess
import sys
from pathlib import Path

PYTHON = Path(__file__).resolve().parent.parent / ".venv-peer" / "bin" / "python"


class Peer:
    """The test side: a running peer process."""

    def __init__(self):
        if not PYTHON.exists():
            raise RuntimeError("the COSE peer's environment is missing: run .ci/setup")
        self.proc = subprocess.Popen([str(PYTHON), __file__], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def ask(self, **request):
        request = {k: v.hex() if isinstance(v, bytes) else v for k, v in request.items()}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return {k: bytes.fromhex(v) if k != "error" else v for k, v in answer.items()}

    def sign(self, seed, kid, payload, kid_protected=True):
        return self.ask(op="sign", seed=seed, kid=kid, payload=payload,
                        kid_protected=kid_protected)["data"]

    def verify(self, public, kid, data):
        """The payload python-cwt verified, or None."""
        answer = self.ask(op="verify", public=public, kid=kid, data=data)
        return answer.get("payload")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def _serve():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cwt import COSE, COSEKey

    def okp(kid, public, seed=None):
        key = {1: 1, 2: kid, 3: -8, -1: 6, -2: public}  # COSE_Key: OKP, kid, EdDSA, Ed25519, x
        if seed is not None:
            key[-4] = seed
        return COSEKey.new(key)

    for line in sys.stdin:
        req = {k: bytes.fromhex(v) if isinstance(v, str) and k != "op" else v
               for k, v in json.loads(line).items()}
        try:
            if req["op"] == "sign":
                private = Ed25519PrivateKey.from_private_bytes(req["seed"])
                public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                           serialization.PublicFormat.Raw)
                key = okp(req["kid"], public, req["seed"])
                if req["kid_protected"]:
                    data = COSE.new().encode_and_sign(req["payload"], key,
                                                      protected={1: -8, 4: req["kid"]})
                else:  # python-cwt's default: the kid in the unprotected header
                    cose = COSE.new(alg_auto_inclusion=True, kid_auto_inclusion=True)
                    data = cose.encode_and_sign(req["payload"], key)
                answer = {"data": data.hex()}
            else:
                payload = COSE.new().decode(req["data"], okp(req["kid"], req["public"]))
                answer = {"payload": payload.hex()}
        except Exception as exc:  # the peer's refusal, reported to the test
            answer = {"error": "%s: %s" % (type(exc).__name__, exc)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    _serve()
