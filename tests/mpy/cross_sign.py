# On MicroPython: verify a COSE_Sign1 made on CPython, then sign one for CPython to verify.
# Files in /xfer: cpython.cose (the message), cpython.pub (its signer's key), board.seed.
from thingsdk.core import cbor, cose, ed25519


def read(name):
    with open("/xfer/" + name, "rb") as f:
        return f.read()


verifier = ed25519.Verifier(read("cpython.pub"))
got = cose.verify_sign1(read("cpython.cose"), {verifier.kid: verifier}, cbor)
print("VERIFIED", cbor.loads(got.payload)["note"])
try:
    tampered = bytearray(read("cpython.cose"))
    tampered[-1] ^= 1
    cose.verify_sign1(bytes(tampered), {verifier.kid: verifier}, cbor)
    print("TAMPERED ACCEPTED")
except cose.CoseError as exc:
    print("TAMPERED REFUSED", exc.code)
board = ed25519.Signer(read("board.seed"))
print("SIGNED", cose.sign1(cbor.dumps({"note": "from the board", "n": 2**40}), board, cbor).hex())
