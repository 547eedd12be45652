"""The `thingsdk` command."""

import argparse
import sys
import time
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
    from thingsdk.inspect import inspect_message, read_message_arg
    from thingsdk.owner import read_public_key

    data = read_message_arg(args.message)
    keys = [read_public_key(t) for t in args.key]
    report, ok = inspect_message(data, keys, now=args.now)
    print(report)
    return 0 if ok else 1


def _print_mandate(token, now, owner_pub=None, device=None):
    from thingsdk.owner import mandate_report

    report, ok = mandate_report(token, now, owner_pub, device)
    print(report)
    return ok


def _sign_mandate(args, options):
    from thingsdk.crypto import load_signer
    from thingsdk.owner import build_claims, write_mandate

    signer = load_signer(args.owner_key)
    now = int(time.time())
    token = write_mandate(build_claims(options, signer.kid, now), signer, args.out)
    _print_mandate(token, now, signer.public_key)
    print("written to   %s" % args.out)
    return 0


def _mandate_options(args):
    """The mandate options (version, valid-days, constraints) given on the command line."""
    from thingsdk.owner import CONSTRAINT_OPTIONS

    options = {"version": args.version, "valid-days": args.valid_days}
    for name, _, _, _ in CONSTRAINT_OPTIONS:
        options[name] = getattr(args, name.replace("-", "_"))
    return options


def _add_mandate_options(p, version_default=None):
    """`mandate create`'s options: --version, --valid-days and one per constraint."""
    from thingsdk.owner import CONSTRAINT_OPTIONS

    if version_default is None:
        p.add_argument("--version", required=True, type=int,
                       help="mandate version: higher than the one the device holds")
    else:
        p.add_argument("--version", type=int, default=version_default,
                       help="mandate version (default: %d)" % version_default)
    p.add_argument("--valid-days", type=int, help="valid for D days from now (default: 365)")
    for name, repeatable, metavar, text in CONSTRAINT_OPTIONS:
        if metavar is None:
            p.add_argument("--" + name, action="store_true", help=text)
        else:
            p.add_argument("--" + name, metavar=metavar, help=text,
                           action="append" if repeatable else "store")


def cmd_mandate_create(args):
    return _sign_mandate(args, dict(_mandate_options(args), **{"device-pub": args.device_pub}))


def cmd_mandate_sign(args):
    from thingsdk.owner import read_mandate_file

    return _sign_mandate(args, read_mandate_file(args.file))


def cmd_mandate_show(args):
    from thingsdk.inspect import read_message_arg
    from thingsdk.owner import parse_kid, read_public_key

    owner_pub = read_public_key(args.owner_pub) if args.owner_pub else None
    device = parse_kid(args.device) if args.device else None
    now = int(time.time()) if args.now is None else args.now
    return 0 if _print_mandate(read_message_arg(args.file), now, owner_pub, device) else 1


def cmd_mandate_send(args):
    """Seal a mandate for its device with the owner's key; publish it on the device's from-owner
    topic (--broker) or write it for the device's from-owner/ folder (--out)."""
    from thingsdk.core.keys import key_id
    from thingsdk.crypto import load_signer
    from thingsdk.inspect import read_message_arg
    from thingsdk.owner import mandate_message, mandate_report, new_id, next_seq
    from thingsdk.owner import read_public_key
    from thingsdk.storage import atomic_write

    if bool(args.broker) == bool(args.out):
        raise CliError("give --broker to publish the mandate, or --out to write it to a file")
    signer = args.signer = load_signer(args.owner_key)
    device_pub = read_public_key(args.device_pub)
    kid = key_id(device_pub)
    token = read_message_arg(args.file)
    now = int(time.time())
    try:
        report, ok = mandate_report(token, now, signer.public_key, kid)
    except ValueError as exc:
        raise CliError("%s: not a mandate: %s" % (args.file, exc))
    print(report)
    if not ok:
        raise CliError("%s is not a mandate of this owner for device %s, valid now: the device "
                       "would refuse it (see above)" % (args.file, kid.hex()))
    seq, msg_id = next_seq(args.owner_key), new_id()
    data = mandate_message(token, signer, kid, seq, now, msg_id)
    print("mandate      message %s, seq %d, to device %s" % (msg_id.hex(), seq, kid.hex()))
    if args.out:
        atomic_write(Path(args.out), data, mode=0o644)
        print("written to   %s" % args.out)
        return 0
    with _owner_link(args, [device_pub]) as link:
        _ready(link, BROKER_WAIT)
        _sent(link, kid, data, "mandate")
    return 0


BROKER_WAIT = 30.0  # seconds the owner's commands wait for the broker to take an answer


def _owner_link(args, devices, on_heard=None):
    """The owner's broker connection from --broker, --ca, --cert, --key (not started)."""
    from thingsdk.owner_wire import OwnerLink

    tls = (args.ca, args.cert, args.key)
    if any(tls) and not args.broker.startswith("mqtts://"):
        raise CliError("--ca, --cert and --key go with --broker mqtts://HOST:PORT")
    return OwnerLink.connect(args.broker, args.signer, devices, on_heard=on_heard,
                             ca_file=args.ca, cert_file=args.cert, key_file=args.key)


def _ready(link, timeout):
    """Wait until the owner's link is connected and subscribed, or say why not."""
    from thingsdk.mqtt import MqttError

    try:
        if link.ready(timeout):
            return
    except MqttError as exc:
        raise CliError(str(exc))
    raise CliError("could not reach the broker at %s within %g s" % (link.transport.address,
                                                                     timeout))


def _sent(link, device, data, what):
    """Publish data to the device's from-owner topic and wait for the broker to take it."""
    from thingsdk import topics

    topic = topics.from_owner(device)
    ack = link.send(device, data)
    if not ack.wait(BROKER_WAIT) or ack.refused:
        raise CliError("the broker at %s did not take the %s for %s" % (
            link.transport.address, what, topic))
    print("published on %s (%s, QoS 1): the device takes it when it is connected" % (
        topic, link.transport.address))


def _waiting_request(link, heard, wait, now):
    """The first approval request of the link's device that comes from the broker within
    `wait` seconds (one published while the owner was away comes at once)."""
    import queue

    from thingsdk.core import messages
    from thingsdk.owner import answerable

    print("waiting for an approval request of device %s on %s" % (
        link.devices[0].hex(), link.transport.address), flush=True)
    deadline = time.monotonic() + wait
    while True:
        try:
            got = heard.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise CliError("no approval request came from %s within %g s" % (
                link.transport.address, wait))
        _show_heard(got)
        if got.verified and got.message.type == messages.APPROVAL_REQUEST:
            return answerable(got.message, now)


def cmd_owner_answer(args):
    import queue

    from thingsdk.crypto import load_signer
    from thingsdk.inspect import read_message_arg
    from thingsdk.owner import answer, new_id, next_seq, open_request, read_public_key
    from thingsdk.owner import request_report
    from thingsdk.storage import atomic_write

    signer = args.signer = load_signer(args.owner_key)
    device_pub = read_public_key(args.device_pub) if args.device_pub else None
    if args.request is None and not (args.broker and device_pub):
        raise CliError("give the request (a file or hex), or --broker and --device-pub to take "
                       "the one waiting on the broker")
    if args.broker and args.out:
        raise CliError("--out writes the answer to a file, --broker publishes it: give one")
    heard = queue.Queue()
    link = _owner_link(args, [device_pub] if device_pub else [], heard.put) \
        if args.broker else None
    try:
        if link is not None:
            _ready(link.start(), args.wait)
        now = int(time.time())
        if args.request is not None:
            request = open_request(read_message_arg(args.request), signer, now, device_pub)
            print(request_report(request, device_pub is not None))
        else:
            request = _waiting_request(link, heard, args.wait, now)
        seq, msg_id = next_seq(args.owner_key), new_id()
        data = answer(request, args.decision, signer, seq, now, msg_id)
        print("answer       %s: approval message %s, seq %d, to device %s"
              % (args.decision, msg_id.hex(), seq, request.kid.hex()))
        if args.out:
            atomic_write(Path(args.out), data, mode=0o644)
            print("written to   %s" % args.out)
        elif link is not None:
            _sent(link, request.kid, data, "answer")
        else:
            print(data.hex())
    finally:
        if link is not None:
            link.close()
    while not heard.empty():  # taken from the owner's session with this one: shown, not lost
        _show_heard(heard.get())
    return 0


def cmd_owner_watch(args):
    """Print each message the owner's devices publish for it, as it arrives, until interrupted
    (or --count messages)."""
    import queue

    from thingsdk.crypto import load_signer
    from thingsdk.owner import read_public_key

    args.signer = load_signer(args.owner_key)
    heard = queue.Queue()
    link = _owner_link(args, [read_public_key(p) for p in args.device_pub], heard.put)
    seen = verified = 0
    with link:
        _ready(link, BROKER_WAIT)
        print("watching %s for %d device(s) as owner %s" % (
            link.transport.address, len(link.devices), args.signer.kid.hex()), flush=True)
        try:
            while args.count is None or seen < args.count:
                got = heard.get()
                _show_heard(got)
                seen, verified = seen + 1, verified + got.verified
        except KeyboardInterrupt:
            pass
    print("%d heard: %d verified, %d refused" % (seen, verified, seen - verified))
    return 0


def _show_heard(heard):
    """Print a message that came from a device for its owner: what it says once verified, or
    that it was refused, and why, never as if verified."""
    from thingsdk.core import messages
    from thingsdk.inspect import utc_text
    from thingsdk.owner import request_report

    msg = heard.message
    if msg is None:
        text = "UNVERIFIED message on the topic of device %s, refused: %s (%s)" % (
            heard.device.hex(), heard.refused, heard.detail)
    elif msg.type == messages.APPROVAL_REQUEST:
        text = request_report(msg, True) + "\n  message    " + heard.data.hex()
    else:
        text = "%s from device %s at %s (signature valid): %s" % (
            msg.name(), msg.kid.hex(), utc_text(msg.ts), msg.body.get("text", msg.body))
    print(text, flush=True)


def _add_owner_broker(p):
    p.add_argument("--ca", help="CA certificate file (mqtts://)")
    p.add_argument("--cert", help="the owner's client certificate file, CN = its key id "
                                  "(mqtts://)")
    p.add_argument("--key", help="the client certificate's private key file (mqtts://)")


def cmd_log(args):
    from thingsdk.owner import log_report

    report, ok = log_report(args.file, args.last)
    print(report)
    return 0 if ok else 1


def add_owner_commands(sub):
    """`mandate create|sign|show|send`, `owner approve|decline|cancel|watch|serve` and `log`: the
    owner's verbs."""
    group = sub.add_parser("mandate", help="write, sign, read and send the owner's mandate")
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = verbs.add_parser("create", help="build a mandate from options and sign it")
    sign = verbs.add_parser("sign", help="sign a mandate written as a TOML file whose keys are "
                                         "the options of `mandate create` (device-pub, version…)")
    sign.add_argument("file", help="the TOML file")
    for p, func in ((create, cmd_mandate_create), (sign, cmd_mandate_sign)):
        p.add_argument("--out", required=True, help="file to write the mandate token to")
        p.add_argument("--owner-key", required=True, help="the owner's private key file")
        p.set_defaults(func=func)
    create.add_argument("--device-pub", required=True,
                        help="the device's public key (PEM file or 64 hex digits)")
    _add_mandate_options(create)

    p = verbs.add_parser("show", help="a mandate in words: owner, device, validity, each rule")
    p.add_argument("file", help="a file holding the mandate token, or the token in hex")
    p.add_argument("--owner-pub", help="the owner's public key, to check the signature")
    p.add_argument("--device", help="the device's key id (16 hex digits) or public key")
    p.add_argument("--now", type=int, default=None,
                   help="unix time for the validity check (default: the clock)")
    p.set_defaults(func=cmd_mandate_show)

    p = verbs.add_parser("send", help="send a new mandate to its device, signed by the owner: "
                                      "on the broker, or as a file for its from-owner/ folder")
    p.add_argument("file", help="a file holding the mandate token (from `mandate create|sign`)")
    p.add_argument("--owner-key", required=True,
                   help="the owner's private key file; its sequence checkpoint is kept next to "
                        "it (<stem>.seq)")
    p.add_argument("--device-pub", required=True,
                   help="the device's public key (PEM file or 64 hex digits)")
    p.add_argument("--broker", help="publish on the device's from-owner topic of this broker "
                                    "(mqtt[s]://HOST:PORT)")
    p.add_argument("--out", help="write the sealed mandate to this file instead (put it in the "
                                 "device's state/from-owner/ folder)")
    _add_owner_broker(p)
    p.set_defaults(func=cmd_mandate_send)

    group = sub.add_parser("owner", help="answer a device's approval request, or cancel an order")
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in ("approve", "decline"):
        p = verbs.add_parser(verb, help="show an approval request and %s it, signed" % verb)
        p.add_argument("request", nargs="?",
                       help="a file holding the approval request, or it in hex (with --broker "
                            "and --device-pub: default the one waiting there)")
        p.add_argument("--owner-key", required=True,
                       help="the owner's private key file; its sequence checkpoint is kept "
                            "next to it (<stem>.seq)")
        p.add_argument("--device-pub", help="the device's public key, to check the request's "
                                            "signature")
        p.add_argument("--out", help="file to write the approval message to (default: print "
                                     "it in hex)")
        p.add_argument("--broker", help="publish the answer on the device's from-owner topic "
                                        "of this broker (mqtt[s]://HOST:PORT)")
        p.add_argument("--wait", type=float, default=30.0,
                       help="seconds to wait for a request on the broker (default 30)")
        _add_owner_broker(p)
        p.set_defaults(func=cmd_owner_answer, decision=verb)
    add_owner_cancel(verbs)
    p = verbs.add_parser("watch", help="print each verified approval request or notice the "
                                       "devices publish for their owner, as it arrives")
    p.add_argument("--broker", required=True, help="mqtt[s]://HOST:PORT")
    p.add_argument("--owner-key", required=True, help="the owner's private key file")
    p.add_argument("--device-pub", required=True, action="append",
                   help="a device's public key (PEM file or hex), to check its signatures; "
                        "repeat for each device")
    p.add_argument("--count", type=int, help="stop after N messages")
    _add_owner_broker(p)
    p.set_defaults(func=cmd_owner_watch)
    add_owner_serve(verbs)

    p = sub.add_parser("log", help="a device's audit log, one decision per line")
    p.add_argument("file", help="the audit log file")
    p.add_argument("--last", type=int, metavar="N", help="only the last N records")
    p.set_defaults(func=cmd_log)


def _vendor_store(path):
    import sqlite3

    from thingsdk.seller.store import StoreError, open_store

    try:
        return open_store(path)
    except Exception as exc:
        # psycopg (optional) is loaded only by a PostgreSQL store: a SQLite vendor does not wait
        # for its import (about 0.16 s a process)
        psycopg = sys.modules.get("psycopg")
        if isinstance(exc, (sqlite3.Error, StoreError)) or (
                psycopg is not None and isinstance(exc, psycopg.Error)):
            raise CliError("database %s: %s" % (path, " ".join(str(exc).split())))  # one line
        raise


def cmd_vendor_serve(args):
    import logging
    import signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.share and (args.workers > 1 or args.part):
        raise CliError("--share spreads a device's messages over the group, out of order; "
                       "--workers and --part partition the devices instead: use one or the other")
    if args.workers > 1:
        return _vendor_workers(args)

    from thingsdk.crypto import load_signer
    from thingsdk.mqtt import Transport
    from thingsdk.seller import catalog
    from thingsdk.seller.serve import Server
    from thingsdk.seller.service import Service

    shop, signer = catalog.load(args.catalog), load_signer(args.key)
    service = Service(_vendor_store(args.db), shop, signer)
    client_id = args.client_id or "thingsdk-vendor-" + signer.kid.hex()
    if args.part and not args.client_id:
        client_id += "-%dof%d" % args.part
    transport = Transport(args.broker, client_id,
                          ca_file=args.ca, cert_file=args.cert, key_file=args.keyfile)
    server = Server(service, transport, share=args.share, interval=args.interval, part=args.part)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.stop())
    signal.signal(signal.SIGUSR1, lambda *_: server.report())
    if args.supervisor:
        _stop_when_orphaned(args.supervisor, server.stop)
    server.run()
    return 0


def _stop_when_orphaned(supervisor, stop):
    """Call stop() once this process's parent is no longer `supervisor` (it was killed)."""
    import logging
    import os
    import threading

    def watch():
        while os.getppid() == supervisor:
            time.sleep(1.0)
        logging.getLogger(__name__).error("the vendor's supervisor (pid %d) is gone: stopping",
                                          supervisor)
        stop()

    threading.Thread(target=watch, daemon=True, name="supervisor-watch").start()


def _vendor_workers(args):
    """`vendor serve --workers N`: N processes, worker i serving part i of N."""
    import os
    import signal

    from thingsdk.crypto import load_signer
    from thingsdk.seller import catalog
    from thingsdk.seller.workers import Workers

    # What every worker would refuse is said once, here, rather than by workers started again
    # and again.
    catalog.load(args.catalog)
    load_signer(args.key)
    _vendor_store(args.db).close()
    same = ["--broker", args.broker, "--db", args.db, "--catalog", args.catalog,
            "--key", args.key, "--interval", repr(args.interval),
            "--supervisor", str(os.getpid())]
    for option, value in (("--ca", args.ca), ("--cert", args.cert), ("--keyfile", args.keyfile)):
        if value:
            same += [option, value]
    commands = []
    for i in range(args.workers):
        command = [sys.executable, "-m", "thingsdk.cli", "vendor", "serve"] + same
        command += ["--part", "%d/%d" % (i, args.workers)]
        if args.client_id:
            command += ["--client-id", "%s-%dof%d" % (args.client_id, i, args.workers)]
        commands.append(command)
    workers = Workers(commands)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: workers.stop())
    signal.signal(signal.SIGUSR1, lambda *_: workers.signal(signal.SIGUSR1))
    return workers.run()


def cmd_vendor_register(args):
    from thingsdk.owner import read_public_key
    from thingsdk.seller.service import register

    device_pub, owner_pub = read_public_key(args.device_pub), read_public_key(args.owner_pub)
    kid = register(_vendor_store(args.db), device_pub, owner_pub, int(time.time()))
    print("registered   device %s" % kid.hex())
    return 0


def cmd_vendor_revoke(args):
    from thingsdk.owner import parse_kid
    from thingsdk.seller.service import revoke

    kid = parse_kid(args.device)
    if not revoke(_vendor_store(args.db), kid):
        raise CliError("no device %s in %s" % (kid.hex(), args.db))
    print("revoked      device %s: its orders are refused from now on" % kid.hex())
    return 0


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _vendor_part(text):
    from thingsdk.seller.serve import parse_part

    try:
        return parse_part(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def add_vendor_commands(sub):
    """`vendor serve|register|revoke`: the reference vendor service."""
    group = sub.add_parser("vendor", help="run the reference vendor service and manage its devices")
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = verbs.add_parser("serve", help="answer devices over MQTT until SIGINT or SIGTERM (SIGUSR1: "
                                       "log the counters)")
    p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--db", required=True, help="the SQLite database file (created if missing), "
                                                "or a postgresql:// URL")
    p.add_argument("--catalog", required=True, help="the catalog TOML file "
                                                    "(see thingsdk/seller/catalog.example.toml)")
    p.add_argument("--key", required=True, help="the vendor's Ed25519 private key file")
    p.add_argument("--ca", help="CA certificate file (mqtts://)")
    p.add_argument("--cert", help="the vendor's client certificate file (mqtts://)")
    p.add_argument("--keyfile", help="the client certificate's private key file (mqtts://)")
    p.add_argument("--share", metavar="GROUP",
                   help="take uplinks through the shared subscription of GROUP, for several "
                        "workers (only on a broker that checks SUBSCRIBE: see docs/topics.md)")
    p.add_argument("--client-id", help="MQTT client id, the same each time this worker starts "
                                       "(default: thingsdk-vendor-<key id>; a worker of --workers "
                                       "or --part adds -<I>of<N>)")
    p.add_argument("--interval", type=float, default=1.0,
                   help="seconds between fulfilment steps (default: 1)")
    p.add_argument("--workers", type=_positive, default=1, metavar="N",
                   help="run N worker processes, each serving the devices of its part, and start "
                        "again any that stops (default: 1)")
    p.add_argument("--part", type=_vendor_part, metavar="I/N",
                   help="serve only part I of N: the devices whose key id modulo N is I, "
                        "subscribing to each one's uplink; one process per part, on any hosts "
                        "that share the database")
    p.add_argument("--supervisor", type=int, help=argparse.SUPPRESS)  # --workers' own pid
    p.set_defaults(func=cmd_vendor_serve)

    p = verbs.add_parser("register", help="register a device and the owner who signs its mandates")
    p.add_argument("--db", required=True, help="the SQLite database file")
    p.add_argument("--device-pub", required=True, help="the device's public key (PEM file or hex)")
    p.add_argument("--owner-pub", required=True, help="the owner's public key (PEM file or hex)")
    p.set_defaults(func=cmd_vendor_register)

    p = verbs.add_parser("revoke", help="deregister a device: its orders are refused")
    p.add_argument("--db", required=True, help="the SQLite database file")
    p.add_argument("--device", required=True, help="the device's key id (16 hex digits) or "
                                                   "public key")
    p.set_defaults(func=cmd_vendor_revoke)


def cmd_device_run(args):
    import logging
    import signal
    import threading

    from thingsdk.device import config

    device = config.load(args.config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger(__name__).info("device %s running", device.kid.hex())
    device.run(stop)
    return 0


def add_device_commands(sub):
    """`device run`: the device runtime."""
    group = sub.add_parser("device", help="run a device: sensors, decisions, orders over MQTT")
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = verbs.add_parser("run", help="run until SIGINT or SIGTERM (state kept in its folder)")
    p.add_argument("--config", required=True,
                   help="the device's TOML file (see thingsdk/device/config.py)")
    p.set_defaults(func=cmd_device_run)


def _device_view(args):
    """(state folder, device kid or None, owner public key or None, now) from --config or
    --state, and --now."""
    if args.config:
        from thingsdk.device.config import locate

        state, kid, owner_pub, clock = locate(args.config)
    else:
        state, kid, owner_pub, clock = Path(args.state), None, None, time.time
    return state, kid, owner_pub, int(clock()) if args.now is None else args.now


def _add_device_view(p):
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--state", help="the device's state folder")
    where.add_argument("--config", help="the device's TOML file (its state folder, key and "
                                        "clock: use it for a device on an accelerated clock)")
    p.add_argument("--now", type=int, default=None,
                   help="unix time to judge by (default: the device's clock)")


def cmd_provision(args):
    from thingsdk.crypto import load_signer
    from thingsdk.provision import provision

    if args.start is not None and not args.speed:
        raise CliError("--start needs --speed")
    clock = {"speed": args.speed} if args.speed else None
    if args.start is not None:
        clock["start"] = args.start
    tls = {"ca": args.ca, "cert": args.cert, "key": args.key}
    signer, token = provision(args.out, args.vendor_pub, args.owner_key, args.broker,
                              _mandate_options(args), args.consumable, int(time.time()), tls,
                              args.device_key, clock, args.interval)
    _print_mandate(token, int(time.time()), load_signer(args.owner_key).public_key)
    out = Path(args.out)
    print("device       key id %s, key %s (mode 0600)" % (signer.kid.hex(), out / "device.key"))
    print("config       %s" % (out / "device.toml"))
    print("next         register the device at the vendor:")
    print("               thingsdk vendor register --db VENDOR.db --device-pub %s --owner-pub %s"
          % (out / "device.pub", out / "owner.pub"))
    print("             then run it:")
    print("               thingsdk device run --config %s" % (out / "device.toml"))
    return 0


def cmd_status(args):
    from thingsdk.device.status import report

    state, kid, owner_pub, now = _device_view(args)
    print(report(state, now, kid, owner_pub))
    return 0


def cmd_owner_cancel(args):
    import functools

    from thingsdk.crypto import load_signer
    from thingsdk.device import cancel
    from thingsdk.device.status import device_kid, open_state
    from thingsdk.owner import next_seq

    path, kid, _, now = _device_view(args)
    state = open_state(path)
    kid = kid or device_kid(state)
    if kid is None:
        raise CliError("the device's key id is unknown (no mandate held): pass --config")
    rec = cancel.find(state, args.id)
    signer = args.signer = load_signer(args.owner_key)
    take_seq = functools.partial(next_seq, args.owner_key)
    if args.broker:
        data = cancel.seal(rec, signer, kid, take_seq, now, args.reason)
    else:
        dropped = cancel.drop(state, rec, signer, kid, take_seq, now, args.reason)
    print("cancel       order %s of need %s (slot %s), reason %s" % (
        rec["oid"].hex(), rec["need"].hex(), rec["slot"], args.reason))
    if args.broker:
        with _owner_link(args, []) as link:
            _sent(link, kid, data, "cancel")
    else:
        print("dropped in   %s: the device sends the vendor its cancel at its next step"
              % dropped)
    return 0


def cmd_owner_serve(args):
    import logging

    # the broker connection's changes (connected, lost, cannot connect), each said once
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        from thingsdk.owner_page.app import serve
    except ImportError as exc:
        raise CliError("the owner's page needs the extra 'owner' (pip install 'thingsdk[owner]'): "
                       "%s" % exc)
    if args.broker.startswith("mqtts://") and not (args.ca and args.cert and args.key):
        raise CliError("--broker mqtts://... needs --ca, --cert and --key (the owner's TLS files)")
    serve(broker=args.broker, ca=args.ca, cert=args.cert, key=args.key, owner_key=args.owner_key,
          device_pubs=args.device_pub, vendor_pub=args.vendor_pub, mandate_files=args.mandate,
          bind=args.bind, port=args.port, token=args.token, db=args.db)
    return 0


def add_owner_serve(verbs):
    """`owner serve`: the owner's page, a local web app over the broker."""
    p = verbs.add_parser("serve", help="a local web page of your devices: levels, forecasts, "
                                       "orders, spend, and approval requests to answer")
    p.add_argument("--broker", required=True, help="mqtts://HOST:PORT (or mqtt:// for tests)")
    p.add_argument("--ca", help="the broker's CA certificate file")
    p.add_argument("--cert", help="the owner's client certificate file")
    p.add_argument("--key", help="the owner's client certificate's key file")
    p.add_argument("--owner-key", required=True,
                   help="the owner's private key file: it signs answers, in this process only; "
                        "its sequence checkpoint is kept next to it (<stem>.seq)")
    p.add_argument("--device-pub", required=True, action="append",
                   help="a device's public key (PEM file or hex); repeatable")
    p.add_argument("--vendor-pub", required=True, help="the vendor's public key")
    p.add_argument("--mandate", action="append", default=[],
                   help="a mandate token you signed, for its budgets and rules; repeatable")
    p.add_argument("--bind", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs a token)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--token", help="required on every request (one is made and printed when "
                                   "binding beyond loopback without it)")
    p.add_argument("--db", help="the page's history file (default: next to the owner key, "
                                "<stem>.page.sqlite)")
    p.set_defaults(func=cmd_owner_serve)


def add_owner_cancel(verbs):
    """`owner cancel`: the owner cancels an order within the mandate's cancel window."""
    p = verbs.add_parser("cancel", help="cancel an order within the mandate's cancel window "
                                        "(a signed message dropped into the device's state)")
    p.add_argument("id", metavar="ORDER_OR_NEED_ID",
                   help="the order id or need id (hex, or a unique prefix; see `thingsdk status`)")
    p.add_argument("--owner-key", required=True,
                   help="the owner's private key file; its sequence checkpoint is kept next to "
                        "it (<stem>.seq)")
    p.add_argument("--reason", default="changed-mind",
                   help="the cancel reason token (default: changed-mind)")
    p.add_argument("--broker", help="publish the cancel on the device's from-owner topic of "
                                    "this broker (mqtt[s]://HOST:PORT) instead of dropping it "
                                    "into its state folder")
    _add_owner_broker(p)
    _add_device_view(p)
    p.set_defaults(func=cmd_owner_cancel)


def add_provision_commands(sub):
    """`provision` and `status`: set a device up, and read its state."""
    p = sub.add_parser("provision", help="write a device's identity bundle: key, pinned vendor "
                                         "key, owner key, mandate, broker, device.toml")
    p.add_argument("--out", required=True, help="the bundle's folder (new or empty)")
    p.add_argument("--vendor-pub", required=True,
                   help="the vendor's public key to pin (PEM file or 64 hex digits)")
    p.add_argument("--owner-key", required=True,
                   help="the owner's private key file: it signs the device's mandate")
    p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--ca", help="CA certificate file to copy in (mqtts://)")
    p.add_argument("--cert", help="the device's client certificate file (CN = its key id)")
    p.add_argument("--key", help="the client certificate's private key file")
    p.add_argument("--device-key", help="use this Ed25519 private key file (from `thingsdk "
                                        "keygen`) instead of a fresh one")
    p.add_argument("--consumable", action="append", required=True, metavar="KEY=VALUE,...",
                   help="a consumable slot, e.g. slot=water-filter,sku=WF-300,unit=ml,"
                        "capacity=300000,lead_time=3d (simulated sensor) or with "
                        "sensor=flow,pin=17,pulses_per_litre=450; repeatable")
    p.add_argument("--speed", type=float, help="demos and tests: the device's time runs SPEED "
                                               "times faster")
    p.add_argument("--start", type=float, help="with --speed: the real unix time the "
                                               "accelerated clock starts from")
    p.add_argument("--interval", type=float, help="real seconds between the device's steps "
                                                  "(default: 60)")
    _add_mandate_options(p, version_default=1)
    p.set_defaults(func=cmd_provision)

    p = sub.add_parser("status", help="a device's consumables, orders in flight, mandate and "
                                      "counters, read from its state folder (read-only)")
    _add_device_view(p)
    p.set_defaults(func=cmd_status)


def cmd_demo(args):
    from thingsdk.demo import DemoError
    from thingsdk.demo.run import run

    tls = (args.ca, args.cert, args.key)
    if any(tls) and not (args.broker or "").startswith("mqtts://"):
        raise CliError("--ca, --cert and --key go with --broker mqtts://HOST:PORT")
    try:
        run(args.broker, tls, args.speed, args.seed, args.quiet, sys.stdout, sys.stderr)
    except DemoError as exc:
        raise CliError(str(exc))
    except KeyboardInterrupt:
        print("thingsdk demo: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    return 0


def add_demo_command(sub):
    """`demo`: three simulated things, the reference vendor and a broker, in one process."""
    from thingsdk.demo import DEFAULT_SPEED

    p = sub.add_parser(
        "demo", help="watch a fridge, a printer and a coffee machine buy for themselves "
                     "(simulated time; nothing to set up)",
        description="A fridge, a printer and a coffee machine, each with its own key, sensor and "
                    "owner-signed mandate, buy their consumables from the reference vendor over "
                    "an MQTT broker embedded in the process (on 127.0.0.1), in simulated time. "
                    "The demo also plays the owner (it approves a purchase above the approval "
                    "threshold) and an attacker (it tampers with an offer). Every message and "
                    "decision is shown, then a summary; it exits 0 once the story played out, "
                    "with nothing left running.")
    p.add_argument("--broker", metavar="URL",
                   help="use the MQTT broker at URL (mqtt://HOST:PORT or mqtts://HOST:PORT) "
                        "instead of an embedded one")
    p.add_argument("--ca", help="CA certificate file, for --broker mqtts://")
    p.add_argument("--cert", help="client certificate file for every demo client (mqtts://)")
    p.add_argument("--key", help="the client certificate's private key file (mqtts://)")
    p.add_argument("--speed", type=float, default=DEFAULT_SPEED,
                   help="simulated seconds per real second (default: %g, about 20 s in all)"
                        % DEFAULT_SPEED)
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the simulated usage: the same seed, the same usage (default: 1)")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    p.set_defaults(func=cmd_demo)


def cmd_firmware_build(args):
    from thingsdk.boards import board
    from thingsdk.firmware_build import FROZEN, build, make_lines, report

    code, ident = build(args.board, args.identity, args.out, args.exclude, args.frozen,
                        args.lines, args.force)
    print(report(args.board, code, ident, args.frozen))
    print("written to   %s" % args.out)
    if args.frozen:
        manifest = Path(args.out) / FROZEN / "manifest.py"
        print("firmware     freeze %s into the board's MicroPython image, then flash that image "
              "and deploy the folder (firmware/ stays here):" % manifest)
        for line in make_lines(board(args.board), manifest):
            print("  " + line)
    return 0


def cmd_firmware_deploy(args):
    from thingsdk.rig.deploy import deploy, local_files
    from thingsdk.rig.repl import Board, BoardError

    local_files(args.dir)  # a build folder, checked before the port is opened
    try:
        with Board(args.port, baudrate=args.baud) as board:
            deploy(board, args.dir)
    except BoardError as exc:
        raise CliError(str(exc))
    return 0


def add_firmware_commands(sub):
    """`firmware build`: a folder to copy to a MicroPython board; `firmware deploy` copies it."""
    from thingsdk.boards import BOARDS

    group = sub.add_parser("firmware", help="build the files a MicroPython board runs; deploy them")
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = verbs.add_parser("build", help="compile the core and the firmware library to .mpy and "
                                       "convert an identity bundle for the board, with main.py "
                                       "to start the application at boot; prints sizes")
    p.add_argument("--board", required=True, metavar="|".join(sorted(BOARDS)), help="the board")
    p.add_argument("--identity", required=True, metavar="BUNDLE_DIR",
                   help="the device's identity bundle (from `thingsdk provision`)")
    p.add_argument("--out", required=True, help="the folder to write (new or empty)")
    p.add_argument("--exclude", action="append", default=[], metavar="MODULE",
                   help="leave out this module of the core or the firmware (no module kept may "
                        "import it; the unused link's are left out anyway); repeatable")
    p.add_argument("--frozen", action="store_true",
                   help="write a MicroPython manifest (firmware/manifest.py) that freezes the "
                        "code into the board's firmware image, where it runs from flash instead "
                        "of the heap, and print the make lines; lib/ is then not written")
    p.add_argument("--force", action="store_true",
                   help="write a .mpy build even when its code would not fit the board's heap "
                        "while a need decides")
    p.add_argument("--lines", action="store_true",
                   help="keep line numbers, private names and sentences in the .mpy files, "
                        "for tracebacks (about 20 %% more code)")
    p.set_defaults(func=cmd_firmware_build)
    p = verbs.add_parser("deploy", help="copy a built folder to a board's flash over its raw "
                                        "REPL (files already there unchanged are skipped), "
                                        "soft-reset it and show free flash and RAM")
    p.add_argument("--port", required=True, metavar="URL",
                   help="the board's serial port or pyserial URL (/dev/ttyACM0, "
                        "socket://host:port, rfc2217://host:port)")
    p.add_argument("--dir", required=True, metavar="BUILD_DIR",
                   help="the folder `thingsdk firmware build` wrote")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default: 115200)")
    p.set_defaults(func=cmd_firmware_deploy)


def add_gateway_commands(sub):
    """`gateway`: relay a board on a serial port to the broker."""
    p = sub.add_parser("gateway", help="relay a board without a network, on a serial port, to "
                                       "the broker until SIGINT or SIGTERM")
    p.add_argument("--port", required=True,
                   help="the board's serial port: a device such as /dev/ttyUSB0, or a pyserial "
                        "URL (socket://, rfc2217://)")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default: 115200)")
    p.add_argument("--broker", required=True, help="mqtt://host:port or mqtts://host:port")
    p.add_argument("--kid", required=True, help="the board's key id (16 hex digits)")
    p.add_argument("--ca", help="CA certificate file (mqtts://)")
    p.add_argument("--cert", help="the board's client certificate file, CN = its key id (mqtts://)")
    p.add_argument("--key", help="the client certificate's private key file (mqtts://)")
    p.set_defaults(func=cmd_gateway)


def cmd_gateway(args):
    import logging
    import signal

    import serial

    from thingsdk import topics
    from thingsdk.gateway import Gateway
    from thingsdk.mqtt import device_transport

    try:
        kid = bytes.fromhex(args.kid)
        topics.kid_hex(kid)
    except ValueError:
        raise CliError("--kid is the board's key id: 16 hex digits")
    if any((args.ca, args.cert, args.key)) and not args.broker.startswith("mqtts://"):
        raise CliError("--ca, --cert and --key go with --broker mqtts://HOST:PORT")
    try:
        port = serial.serial_for_url(args.port, baudrate=args.baud, timeout=0, write_timeout=1)
    except serial.SerialException as exc:
        raise CliError(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    transport = device_transport(args.broker, kid, ca_file=args.ca, cert_file=args.cert,
                                 key_file=args.key)
    gateway = Gateway(port, transport, kid)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: gateway.stop())
    try:
        gateway.run()
    finally:
        port.close()
    return 0


def _print_written(files):
    for path in files:
        print("wrote        %s" % path)


def _print_device_files(folder, device_pubs):
    """Each device's TLS files, as `thingsdk provision` takes them."""
    from thingsdk import broker_setup
    from thingsdk.core.keys import key_id
    from thingsdk.owner import read_public_key

    for pub in device_pubs:
        ca, cert, key = broker_setup.client_files(folder, "device",
                                                  key_id(read_public_key(pub)).hex())
        print("provision    %s: --ca %s --cert %s --key %s" % (pub, ca, cert, key))


def cmd_broker_init(args):
    from thingsdk import broker_setup
    from thingsdk.owner import read_public_key

    if args.plugin and not Path(args.plugin).is_file():
        raise CliError("--plugin %s: no such file" % args.plugin)
    if bool(args.device_pub) != bool(args.owner_pub):
        raise CliError("--device-pub and --owner-pub go together: the owner reads its devices' "
                       "topics")
    vendor = read_public_key(args.vendor_pub)  # every key read before anything is written
    owner = read_public_key(args.owner_pub) if args.owner_pub else None
    devices = [read_public_key(d) for d in args.device_pub or []]
    if owner in devices or vendor in devices or vendor == owner:
        raise CliError("the vendor, the owner and each device need keys of their own")
    written = broker_setup.init(args.dir, vendor, args.host, workers=args.workers,
                                share=args.share, port=args.port, bind=args.bind,
                                plugin=args.plugin, user=args.user, days=args.days)
    if devices:
        written += broker_setup.add(args.dir, owner, devices, days=args.days)
    _print_written(dict.fromkeys(written))
    _print_device_files(args.dir, args.device_pub or [])
    conf = Path(args.dir) / broker_setup.CONF
    ca, cert, key = broker_setup.client_files(args.dir, "vendor", 1)
    print("start        mosquitto -c %s" % conf)
    print("             (as the folder's owner; mosquitto started as root runs as %s, who must "
          "own the folder)" % ("the user " + args.user if args.user else "the user mosquitto"))
    print("vendor       thingsdk vendor serve --broker mqtts://%s:%d --ca %s --cert %s "
          "--keyfile %s ..." % (args.host[0], args.port, ca, cert, key))
    print("devices      thingsdk broker add %s --owner-pub OWNER.pub --device-pub DEVICE.pub "
          "--live mqtts://%s:%d" % (args.dir, args.host[0], args.port))
    return 0


def cmd_broker_add(args):
    from thingsdk import broker_setup
    from thingsdk.owner import read_public_key

    written = broker_setup.add(args.dir, read_public_key(args.owner_pub),
                               [read_public_key(d) for d in args.device_pub or []],
                               fronts=args.front or [], days=args.days, live=args.live)
    _print_written(written)
    _print_device_files(args.dir, args.device_pub or [])
    if args.live:
        print("live         the broker at %s has the new rules" % args.live)
    else:
        print("next         restart mosquitto (it reads %s when it starts), or pass --live URL "
              "next time" % broker_setup.DYNSEC)
    return 0


def add_broker_commands(sub):
    """`broker init|add`: a mosquitto set-up for a deployment (thingsdk.broker_setup)."""
    group = sub.add_parser("broker", help="write a mosquitto set-up: CA, certificates, "
                                          "mosquitto.conf with mutual TLS, access rules")
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = verbs.add_parser("init", help="a new set-up in a folder: CA, broker and vendor worker "
                                      "certificates, mosquitto.conf, dynamic-security.json")
    p.add_argument("dir", help="the folder to write (new or empty)")
    p.add_argument("--vendor-pub", required=True,
                   help="the vendor's public key (PEM file or 64 hex digits)")
    p.add_argument("--host", action="append", required=True,
                   help="a name or IP address clients reach the broker by (in its "
                        "certificate); repeatable")
    p.add_argument("--port", type=int, default=8883, help="the TLS port (default: 8883)")
    p.add_argument("--bind", metavar="ADDRESS", help="listen on this address only "
                                                     "(default: all)")
    p.add_argument("--workers", type=int, default=1,
                   help="vendor workers, each with its certificate vendor-N (default: 1)")
    p.add_argument("--share", default="vendor", metavar="GROUP",
                   help="the share group the vendor's workers may join (default: vendor)")
    p.add_argument("--plugin", metavar="FILE",
                   help="mosquitto's dynamic-security plugin (default: found where mosquitto "
                        "installs it)")
    p.add_argument("--user", help="the user mosquitto runs as when started as root (it must "
                                  "read the folder)")
    p.add_argument("--days", type=int, default=825,
                   help="validity of the certificates issued (default: 825)")
    p.add_argument("--owner-pub", help="the owner of the devices given (as in `broker add`)")
    p.add_argument("--device-pub", action="append", help="a device to enrol; repeatable")
    p.set_defaults(func=cmd_broker_init)

    p = verbs.add_parser("add", help="enrol devices and their owner: a certificate each (CN = "
                                     "key id) and their access rules")
    p.add_argument("dir", help="the folder `broker init` wrote")
    p.add_argument("--owner-pub", required=True,
                   help="the devices' owner (PEM file or 64 hex digits): may read their topics")
    p.add_argument("--device-pub", action="append",
                   help="a device's public key (PEM file or 64 hex digits); repeatable")
    p.add_argument("--front", action="append", metavar="NAME",
                   help="one more certificate for the owner (CN = its key id, a dot, NAME), for "
                        "a front end of its own (its page beside the command line): each has its "
                        "own connection and session; repeatable")
    p.add_argument("--live", metavar="URL",
                   help="also give the running broker at URL (mqtts://host:port) the new rules, "
                        "as the set-up's admin client, instead of restarting it")
    p.add_argument("--days", type=int, default=825,
                   help="validity of the certificates issued (default: 825)")
    p.set_defaults(func=cmd_broker_add)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="thingsdk", description="An SDK for things that buy for themselves."
    )
    parser.add_argument("--version", action="version", version="thingsdk " + __version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_demo_command(sub)

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
    add_owner_commands(sub)
    add_vendor_commands(sub)
    add_device_commands(sub)
    add_provision_commands(sub)
    add_broker_commands(sub)
    add_firmware_commands(sub)
    add_gateway_commands(sub)
    return parser


def main(argv=None):
    from thingsdk.storage import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CheckpointError as exc:
        print("thingsdk %s: error: %s: the device will not sign again with sequence numbers it "
              "cannot trust; restore that file from a backup of the state folder"
              % (args.command, exc), file=sys.stderr)
        return 2
    except (CliError, OSError, ValueError) as exc:
        print("thingsdk %s: error: %s" % (args.command, exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
