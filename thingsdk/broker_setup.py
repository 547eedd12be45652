"""A mosquitto set-up for one deployment (`thingsdk broker init|add`): its own certificate
authority, certificates for the broker, the vendor's workers, the devices and their owners, a
mosquitto.conf and the access rules as a dynamic-security.json.

Identity. Every client authenticates with a certificate from the deployment's CA (mutual TLS,
`require_certificate true`); `use_identity_as_username true` makes the certificate's CN its
username and `use_username_as_clientid true` its client id, whatever the client asks for, so a
device with a valid certificate cannot take another's client id (and kick it off). A device's or
owner's CN is its Ed25519 key id in hex; the vendor's workers are `vendor-1`, `vendor-2`... (each
needs a client id of its own). The TLS keys are separate P-256 keys: the boards' TLS stacks speak
ECDSA, and the signing keys stay out of the transport.

Access. mosquitto's dynamic-security plugin (shipped with mosquitto 2) checks SUBSCRIBE when it is
made, where the older `acl_file` grants any SUBSCRIBE and filters only at delivery (a device could
join the vendor's share group). Its rules come from thingsdk.topics' access rules: one role per
device and per owner (the plugin in mosquitto 2.0 has no %u patterns), one for the vendor. The
plugin refuses what no rule allows; a client whose CN the file does not name may connect but do
nothing. The plugin reads the file at start (a SIGHUP does not reload it) and rewrites it itself
when changed through its control topic: `thingsdk broker add --live URL` makes the same change
there, as the set-up's `admin` client, so the broker need not restart.
"""

import datetime
import glob
import ipaddress
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from thingsdk import topics
from thingsdk.core.cose import MAX_MESSAGE_BYTES
from thingsdk.core.keys import key_id
from thingsdk.storage import atomic_write

CONF, DYNSEC = "mosquitto.conf", "dynamic-security.json"
CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER = "server"
PLUGIN = "mosquitto_dynamic_security.so"
PLUGIN_DIRS = ("/usr/lib/*-linux-gnu", "/usr/lib", "/usr/local/lib", "/usr/lib/mosquitto",
               "/opt/homebrew/lib", "/usr/local/opt/mosquitto/lib")
VENDOR_ROLE = "vendor"
# The operator's client: it may use the plugin's control topic, to change the rules live.
ADMIN = "admin"
CONTROL = "$CONTROL/dynamic-security/v1"
ADMIN_ACCESS = [(topics.WRITE, CONTROL), (topics.READ, CONTROL + "/response")]
# A vendor worker taking a fleet's burst needs more room than mosquitto's default of 1000 queued
# QoS 1 messages per client (beyond it they are dropped); the bytes bound what one client can hold.
MAX_QUEUED_MESSAGES = 100_000
MAX_QUEUED_BYTES = 256 * 1024 * 1024
MAX_PACKET_BYTES = MAX_MESSAGE_BYTES + 1024
# dynamic-security's rule types for the two kinds of access rule of thingsdk.topics. A filter
# with a wildcard also allows narrower subscriptions (`thingsdk/v1/up/+` allows one device's
# uplink); a topic without one allows exactly itself.
_ACL_TYPES = {topics.WRITE: ("publishClientSend",),
              topics.READ: ("subscribe", "publishClientReceive")}


class SetupError(ValueError):
    """The set-up cannot be written or read as asked (the message says why and names the file)."""


def find_plugin():
    """The dynamic-security plugin's file, or None."""
    for folder in PLUGIN_DIRS:
        found = sorted(glob.glob(os.path.join(folder, PLUGIN)))
        if found:
            return found[0]
    return None


# Certificates.

def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


class Authority:
    """The deployment's CA: its certificate and key in `folder` (ca.pem, ca.key)."""

    def __init__(self, folder, cert, key):
        self.folder, self.cert, self.key = Path(folder), cert, key

    @classmethod
    def create(cls, folder, name="thingsdk deployment CA", days=3650, now=None):
        now = now or datetime.datetime.now(datetime.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (_builder(_name(name), _name(name), key.public_key(), now, days)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                             False), critical=True)
                .sign(key, hashes.SHA256()))
        folder = Path(folder)
        atomic_write(folder / CA_KEY, _pem_key(key), mode=0o600)
        atomic_write(folder / CA_CERT, _pem_cert(cert), mode=0o644)
        return cls(folder, cert, key)

    @classmethod
    def load(cls, folder):
        folder = Path(folder)
        return cls(folder, _read_cert(folder / CA_CERT), _read_key(folder / CA_KEY))

    def issue(self, stem, common_name, usage, days, hosts=(), now=None):
        """A certificate for CN `common_name` and a fresh P-256 key: `<stem>.pem`, `<stem>.key`
        (mode 0600) in the folder; returns their paths. `hosts` (names or IP addresses) go into
        a server certificate's subjectAltName."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (_builder(_name(common_name), self.cert.subject, key.public_key(), now, days)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_host(h) for h in hosts]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_file, key_file = self.folder / (stem + ".pem"), self.folder / (stem + ".key")
        atomic_write(key_file, _pem_key(key), mode=0o600)
        atomic_write(cert_file, _pem_cert(cert), mode=0o644)
        return cert_file, key_file


def _builder(subject, issuer, public_key, now, days):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days)))


def _host(host):
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _read_cert(path):
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except FileNotFoundError:
        raise SetupError("%s: no such file (is this a folder `thingsdk broker init` wrote?)"
                         % path) from None
    except ValueError:
        raise SetupError("%s: not a PEM certificate" % path) from None


def _read_key(path):
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except FileNotFoundError:
        raise SetupError("%s: no such file (is this a folder `thingsdk broker init` wrote?)"
                         % path) from None
    except (TypeError, ValueError):
        raise SetupError("%s: not a PEM private key, or one with a password" % path) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SetupError("%s: the CA key is not an ECDSA key" % path)
    return key


# Access rules: thingsdk.topics' rules as dynamic-security roles.

def role(name, rules):
    """A dynamic-security role allowing exactly `rules` ((READ|WRITE, topic) pairs)."""
    acls = []
    for kind, topic in rules:
        for acltype in _ACL_TYPES[kind]:
            if acltype == "publishClientReceive":  # checked against the message's topic
                topic = topics.shared_filter(topic)
            elif acltype == "subscribe":
                wild = "+" in topic.split("/") or "#" in topic.split("/")
                acltype = "subscribePattern" if wild else "subscribeLiteral"
            acl = {"acltype": acltype, "topic": topic, "allow": True}
            if acl not in acls:
                acls.append(acl)
    return {"rolename": name, "acls": acls}


def empty_access():
    """A dynamic-security configuration with no clients: everything but UNSUBSCRIBE refused."""
    return {"clients": [], "groups": [], "roles": [],
            "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                                 "subscribe": False, "unsubscribe": True}}


def _put(items, key, item):
    """Add or replace the entry of `items` with item[key]."""
    for i, old in enumerate(items):
        if old[key] == item[key]:
            items[i] = item
            return
    items.append(item)


def set_client(access, username, rolename, rules, text):
    """Give `username` (a certificate's CN) one role of its own or a shared one, with `rules`."""
    _put(access["roles"], "rolename", role(rolename, rules))
    _put(access["clients"], "username",
         {"username": username, "textName": text, "roles": [{"rolename": rolename}],
          "groups": []})


def owner_devices(access, owner_cn):
    """The device CNs an owner's role reads, in order."""
    for item in access["roles"]:
        if item["rolename"] == "owner-" + owner_cn:
            return list(dict.fromkeys(topics.parse(acl["topic"])[1].hex()
                                      for acl in item["acls"]))
    return []


# mosquitto.conf.

def conf_text(folder, plugin, port=8883, bind=None, user=None, persistence=True, state=None):
    """mosquitto.conf for the set-up in `folder`, whose broker keeps its sessions (data/) and
    access rules in `state` (default: the same folder). Paths are absolute, as mosquitto resolves
    relative ones from its working directory."""
    folder = Path(folder).resolve()
    state = Path(state or folder).resolve()
    lines = [
        "# A thingsdk deployment's broker (written by `thingsdk broker init`).",
        "# Start it with: mosquitto -c %s" % (folder / CONF),
        "per_listener_settings true",
    ]
    if user:
        lines.append("user %s" % user)
    lines += [
        "persistence %s" % ("true" if persistence else "false"),
        "persistence_location %s/" % (state / "data"),
        "# Sessions of clients gone for a month are dropped, with what was queued for them.",
        "persistent_client_expiration 30d",
        "# Nagle's algorithm holds each small publish for the previous one's ACK (~40 ms a hop).",
        "set_tcp_nodelay true",
        "# The protocol's largest signed message, with room for the topic and properties; a bigger",
        "# packet is refused at the broker (max_packet_size replaces message_size_limit).",
        "max_packet_size %d" % MAX_PACKET_BYTES,
        "# Room for a fleet's uplinks while a vendor worker is away (QoS 1 beyond it is dropped).",
        "max_queued_messages %d" % MAX_QUEUED_MESSAGES,
        "max_queued_bytes %d" % MAX_QUEUED_BYTES,
        "",
        "listener %d%s" % (port, " " + bind if bind else ""),
        "cafile %s" % (folder / CA_CERT),
        "certfile %s" % (folder / (SERVER + ".pem")),
        "keyfile %s" % (folder / (SERVER + ".key")),
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "allow_anonymous false",
        "plugin %s" % plugin,
        "plugin_opt_config_file %s" % (state / DYNSEC),
    ]
    return "\n".join(lines) + "\n"


# The set-up in a folder.

def _kid_of(public_key):
    return key_id(public_key).hex()


FRONT_NAME = re.compile(r"[A-Za-z0-9-]{1,32}\Z")


def _client_stem(kind, cn):
    return "%s-%s" % (kind, cn)


def read_access(folder):
    path = Path(folder) / DYNSEC
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SetupError("%s: no such file (is this a folder `thingsdk broker init` wrote?)"
                         % path) from None
    except ValueError as exc:
        raise SetupError("%s: not a dynamic-security file (%s)" % (path, exc)) from None


def write_access(folder, access):
    atomic_write(Path(folder) / DYNSEC, (json.dumps(access, indent=1) + "\n").encode(), mode=0o600)


def init(folder, vendor_pub, hosts, *, workers=1, share="vendor", port=8883, bind=None,
         plugin=None, user=None, days=825, now=None):
    """Write a new set-up into `folder` (new or empty): CA, server certificate for `hosts`,
    `workers` vendor worker certificates, mosquitto.conf and dynamic-security.json. `vendor_pub`
    is the vendor's raw Ed25519 public key (its id names the CA). Returns the list of files."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise SetupError("%s exists and is not empty" % folder)
    if not hosts:
        raise SetupError("name at least one host the devices reach the broker by (--host)")
    if workers < 1:
        raise SetupError("the vendor needs at least one worker")
    plugin = plugin or find_plugin()
    if plugin is None:
        raise SetupError("mosquitto's dynamic-security plugin (%s) is not in %s: install "
                         "mosquitto 2 or pass --plugin FILE" % (PLUGIN, ", ".join(PLUGIN_DIRS)))
    for host in hosts:
        _host(host)  # a bad name fails before any file is written
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    (folder / "data").mkdir(mode=0o700)
    ca = Authority.create(folder, "thingsdk CA of vendor %s" % _kid_of(vendor_pub), now=now)
    written = [folder / CA_CERT, folder / CA_KEY]
    written += ca.issue(SERVER, hosts[0], ExtendedKeyUsageOID.SERVER_AUTH, days, hosts, now)
    access = empty_access()
    for n in range(1, workers + 1):
        cn = "%s-%d" % (VENDOR_ROLE, n)
        set_client(access, cn, VENDOR_ROLE, topics.vendor_access(share),
                   "vendor %s, worker %d" % (_kid_of(vendor_pub), n))
        written += ca.issue(cn, cn, ExtendedKeyUsageOID.CLIENT_AUTH, days, now=now)
    set_client(access, ADMIN, ADMIN, ADMIN_ACCESS, "the operator: changes the rules live")
    written += ca.issue(ADMIN, ADMIN, ExtendedKeyUsageOID.CLIENT_AUTH, days, now=now)
    write_access(folder, access)
    (folder / CONF).write_text(conf_text(folder, plugin, port, bind, user))
    return written + [folder / CONF, folder / DYNSEC]


def add(folder, owner_pub, device_pubs, *, fronts=(), days=825, now=None, live=None):
    """Enrol devices and their owner into the set-up in `folder`: a certificate for each device
    (CN = its key id) and the owner (once), a role for each; the owner's role reads its devices'
    topics (with those it had). Each name in `fronts` is one more of the owner's front ends (its
    page, a second command line), with a certificate of its own (CN = the owner's key id, a dot,
    the name) in the owner's role: it is a client of its own to the broker, with its own session,
    so it and the others do not take each other's connection and each gets every message for
    the owner. With `live` (the running broker's mqtts:// URL) the new rules also take effect
    there at once. Returns the files written."""
    folder = Path(folder)
    ca = Authority.load(folder)
    access = read_access(folder)
    owner = _kid_of(owner_pub)
    devices = [_kid_of(pub) for pub in device_pubs]
    if owner in devices:
        raise SetupError("the owner's key is also given as a device's: each needs its own key")
    taken = {c["username"]: c["roles"][0]["rolename"] for c in access["clients"] if c["roles"]}
    for cn, kind in [(owner, "owner")] + [(d, "device") for d in devices]:
        if taken.get(cn, kind + "-" + cn) != kind + "-" + cn:
            raise SetupError("key id %s is already enrolled as %s" % (cn, taken[cn]))
    written = []
    for kid in devices:
        set_client(access, kid, "device-" + kid, topics.device_access(bytes.fromhex(kid)),
                   "device %s of owner %s" % (kid, owner))
        if not (folder / (_client_stem("device", kid) + ".pem")).exists():
            written += ca.issue(_client_stem("device", kid), kid, ExtendedKeyUsageOID.CLIENT_AUTH,
                                days, now=now)
    owned = list(dict.fromkeys(owner_devices(access, owner) + devices))
    rules = topics.owner_access([bytes.fromhex(kid) for kid in owned])
    set_client(access, owner, "owner-" + owner, rules, "owner %s" % owner)
    names = [owner]
    for front in fronts:
        if not FRONT_NAME.match(front):
            raise SetupError("a front end's name is 1 to 32 letters, digits or '-', not %r"
                             % front)
        names.append("%s.%s" % (owner, front))
        set_client(access, names[-1], "owner-" + owner, rules,
                   "front end %s of owner %s" % (front, owner))
    for cn in names:
        if not (folder / (_client_stem("owner", cn) + ".pem")).exists():
            written += ca.issue(_client_stem("owner", cn), cn, ExtendedKeyUsageOID.CLIENT_AUTH,
                                days, now=now)
    if live:
        apply_live(folder, live, commands_for(access, names + devices))
    write_access(folder, access)
    return written + [folder / DYNSEC]


def commands_for(access, usernames):
    """Dynamic-security commands that give a running broker these clients of `access` with
    their roles and every rule of those roles, whatever of it the broker has already."""
    roles = {r["rolename"]: r for r in access["roles"]}
    commands = []
    for client in access["clients"]:
        if client["username"] not in usernames:
            continue
        for name in (r["rolename"] for r in client["roles"]):
            commands.append({"command": "createRole", "rolename": name})
            commands += [dict(acl, command="addRoleACL", rolename=name)
                         for acl in roles[name]["acls"]]
        # (a client's roles never change: one that exists already has them)
        commands.append({"command": "createClient", "username": client["username"],
                         "textname": client["textName"], "roles": client["roles"]})
    return commands


def _batches(commands, limit=MAX_MESSAGE_BYTES):
    """The commands as control messages of at most `limit` bytes (the broker's packet limit
    holds for its operator too)."""
    batch, size = [], 20
    for command in commands:
        length = len(json.dumps(command)) + 2
        if batch and size + length > limit:
            yield batch
            batch, size = [], 20
        batch.append(command)
        size += length
    if batch:
        yield batch


def apply_live(folder, url, commands, timeout=10.0):
    """Send `commands` to the running broker at `url` as the set-up's admin client; what the
    broker has already (it restarted since, or an earlier call) is no error. Raises SetupError
    otherwise."""
    from thingsdk.mqtt import MqttError, Transport

    answers, answered = [], threading.Condition()

    def on_message(topic, payload):
        with answered:
            answers.extend(json.loads(payload).get("responses", []))
            answered.notify_all()

    ca, cert, key = (str(path) for path in client_files(folder, ADMIN, None))
    try:
        with Transport(url, ADMIN, on_message=on_message, ca_file=ca, cert_file=cert,
                       key_file=key, session_expiry=0) as admin:
            deadline = time.monotonic() + timeout
            while not admin.wait_connected(0.05):  # the first failure is the answer
                if admin.last_error is not None or time.monotonic() > deadline:
                    raise SetupError("cannot reach the broker at %s: %s"
                                     % (url, admin.last_error or "no answer"))
            subscribed = admin.subscribe(CONTROL + "/response")
            if not subscribed.wait(timeout) or subscribed.refused:
                raise SetupError("the broker at %s did not let %s use its control topic "
                                 "(is it this set-up's broker?)" % (url, ADMIN))
            for batch in _batches(commands):
                expected = len(answers) + len(batch)
                admin.publish(CONTROL, json.dumps({"commands": batch}).encode())
                with answered:
                    if not answered.wait_for(lambda: len(answers) >= expected, timeout):
                        raise SetupError("no answer from the dynamic-security plugin of the "
                                         "broker at %s in %g s" % (url, timeout))
    except MqttError as exc:
        raise SetupError(str(exc)) from None
    failed = ["%s: %s" % (a.get("command"), a["error"]) for a in answers
              if "error" in a and "already exists" not in a["error"]]
    if failed:
        raise SetupError("the broker at %s refused: %s" % (url, "; ".join(failed)))


def client_files(folder, kind, cn):
    """(ca, cert, key) paths of a client of the set-up: kind is "device", "owner", "vendor"
    (cn then is the worker's number) or "admin"."""
    folder = Path(folder)
    if kind == ADMIN:
        stem = ADMIN
    elif kind == VENDOR_ROLE:
        stem = "%s-%s" % (VENDOR_ROLE, cn)
    else:
        stem = _client_stem(kind, cn)
    return folder / CA_CERT, folder / (stem + ".pem"), folder / (stem + ".key")


def mosquitto_binary():
    """The mosquitto program (Debian puts it in /usr/sbin, not always on PATH), or None."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
