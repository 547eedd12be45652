"""The `thingsdk` command."""

import argparse
import sys
from pathlib import Path

from thingsdk import __version__


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def cmd_keygen(args):
    from thingsdk.crypto import Ed25519Signer, save_keypair

    out = Path(args.out)
    private_path, public_path = out / (args.name + ".key"), out / (args.name + ".pub")
    if private_path.exists() and not args.force:
        raise CliError("%s exists; pass --force to replace it" % private_path)
    out.mkdir(parents=True, exist_ok=True)
    signer = Ed25519Signer.generate()
    save_keypair(signer, private_path, public_path)
    print("private key  %s (mode 0600)" % private_path)
    print("public key   %s" % public_path)
    print("public hex   %s" % signer.public_key.hex())
    print("key id       %s" % signer.kid.hex())
    return 0


def cmd_inspect(args):
    from thingsdk.crypto import load_public_key
    from thingsdk.inspect import inspect_message, is_file, read_message_arg

    data = read_message_arg(args.message)
    keys = [load_public_key(Path(t).read_text() if is_file(t) else t) for t in args.key]
    report, ok = inspect_message(data, keys, now=args.now)
    print(report)
    return 0 if ok else 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="thingsdk", description="An SDK for things that buy for themselves."
    )
    parser.add_argument("--version", action="version", version="thingsdk " + __version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("keygen", help="create an Ed25519 key pair (private key file mode 0600)")
    p.add_argument("--out", default=".", help="folder for the key files (default: .)")
    p.add_argument("--name", default="device", help="file name stem (default: device)")
    p.add_argument("--force", action="store_true", help="replace existing key files")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser(
        "inspect",
        help="show a signed message: diagnostic notation, header fields, signature check",
    )
    p.add_argument("message", help="a file holding the message, or the message in hex")
    p.add_argument(
        "--key", action="append", default=[],
        help="a public key (PEM file or 64 hex digits) to check the signature with; repeatable",
    )
    p.add_argument("--now", type=int, default=None,
                   help="unix time for the freshness check (default: the clock)")
    p.set_defaults(func=cmd_inspect)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, OSError, ValueError) as exc:
        print("thingsdk %s: error: %s" % (args.command, exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
