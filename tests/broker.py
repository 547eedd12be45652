"""A real mosquitto broker for tests, set up by `thingsdk broker` (thingsdk.broker_setup).

The session's Pki is a `thingsdk broker init` folder: its CA, the broker's certificate for
127.0.0.1/localhost and the vendor's workers VENDOR and VENDOR_2. `pki.client(cn)` issues a
client certificate from that CA and, for a device's key id, gives it the device's access rules.
Each Broker runs that set-up's mosquitto.conf (mutual TLS, the CN as username and client id, the
dynamic-security plugin) on a free loopback port, with its own sessions and rules file, and adds
two plain listeners for tests that need them: `url` (anonymous, no ACL) and `refusing_url`
(refuses every client: allow_anonymous false). A device enrolled while a broker runs is added to
it live, as `thingsdk broker add --live` does (the set-up's admin client, through the plugin's
control topic). THINGSDK_BROKER_HOST binds
the broker to a rig's LAN address for a real board (hil/README.md).
"""

import os
import pwd
import signal
import socket
import subprocess
import threading
import time

from cryptography.x509.oid import ExtendedKeyUsageOID

from thingsdk import broker_setup, topics
from thingsdk.crypto import Ed25519Signer

# A real board on a test rig reaches the broker over the LAN: hil/README.md.
HOST = os.environ.get("THINGSDK_BROKER_HOST", "127.0.0.1")
VENDOR, VENDOR_2 = "vendor-1", "vendor-2"
VENDOR_KEY = Ed25519Signer.from_seed(bytes(range(40, 72)))
find_mosquitto = broker_setup.mosquitto_binary


def free_ports(n):
    """n different free ports on HOST. Each socket stays bound until all n are chosen: bound and
    closed one after another, the kernel may hand out the same port twice, and a broker given it
    for two listeners fails to start ("Address already in use")."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port():
    return free_ports(1)[0]


def accepting(port):
    """Whether something accepts connections on HOST at port."""
    try:
        socket.create_connection((HOST, port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_for(condition, timeout=10.0, interval=0.02):
    """Poll condition() until it is truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Pki:
    """The `thingsdk broker init` folder of the test session, and client certificates from its
    CA for any CN (`client(cn)`); devices' CNs get their access rules in `access`."""

    def __init__(self, folder):
        self.folder = folder
        # The plugin's path goes into the conf; tests of files alone run where mosquitto is not.
        broker_setup.init(folder, VENDOR_KEY.public_key, [HOST, "localhost"], workers=2,
                          plugin=broker_setup.find_plugin() or broker_setup.PLUGIN)
        self.ca_file = folder / broker_setup.CA_CERT
        self.server = tuple(str(folder / (broker_setup.SERVER + ext)) for ext in (".pem", ".key"))
        self.access = broker_setup.read_access(folder)
        self.brokers = []  # running brokers, told of each device enrolled
        self._authority = broker_setup.Authority.load(folder)
        self._lock = threading.Lock()

    def client(self, common_name):
        """(cert_file, key_file) of a client certificate whose CN is common_name."""
        with self._lock:
            cert_file = self.folder / (common_name + ".pem")
            key_file = self.folder / (common_name + ".key")
            if not cert_file.exists():
                self._authority.issue(common_name, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, 2)
                if topics._KID_HEX.match(common_name):
                    self._enrol(common_name)
        return str(cert_file), str(key_file)

    def owner(self, owner_kid, device_kids):
        """(cert_file, key_file) of the owner's certificate (CN = its key id), enrolled with the
        access rules of an owner of these devices (as `thingsdk broker add` does)."""
        cn = owner_kid.hex()
        with self._lock:
            cert_file, key_file = self.folder / (cn + ".pem"), self.folder / (cn + ".key")
            if not cert_file.exists():
                self._authority.issue(cn, cn, ExtendedKeyUsageOID.CLIENT_AUTH, 2)
            broker_setup.set_client(self.access, cn, "owner-" + cn,
                                    topics.owner_access(device_kids), "test owner")
            for broker in self.brokers:
                broker_setup.apply_live(self.folder, broker.tls_url,
                                        broker_setup.commands_for(self.access, [cn]))
        return str(cert_file), str(key_file)

    def _enrol(self, kid_hex):
        broker_setup.set_client(self.access, kid_hex, "device-" + kid_hex,
                                topics.device_access(bytes.fromhex(kid_hex)), "test device")
        for broker in self.brokers:  # as `thingsdk broker add --live` does
            broker_setup.apply_live(self.folder, broker.tls_url,
                                    broker_setup.commands_for(self.access, [kid_hex]))


class Broker:
    """One mosquitto process on fixed loopback ports; start(), stop() and restart() keep them."""

    def __init__(self, folder, pki, persistence=False):
        self.folder = folder
        self.pki = pki
        self.persistence = persistence
        self.port, self.tls_port, self.refusing_port = free_ports(3)
        self.url = "mqtt://%s:%d" % (HOST, self.port)
        self.tls_url = "mqtts://%s:%d" % (HOST, self.tls_port)
        self.refusing_url = "mqtt://%s:%d" % (HOST, self.refusing_port)
        self.log_file = folder / "mosquitto.log"
        self._process = None
        (folder / "data").mkdir()
        self._config = self._write_config()

    def _write_config(self):
        # mosquitto started as root drops to the `mosquitto` user, which cannot read our files
        conf = broker_setup.conf_text(self.pki.folder, broker_setup.find_plugin(), self.tls_port,
                                      HOST, pwd.getpwuid(os.getuid()).pw_name, self.persistence,
                                      state=self.folder)
        lines = [
            "log_dest file %s" % self.log_file,
            "log_type all",
            "",
            "listener %d %s" % (self.port, HOST),
            "allow_anonymous true",
            "",
            "listener %d %s" % (self.refusing_port, HOST),
            "allow_anonymous false",
        ]
        config = self.folder / "mosquitto.conf"
        config.write_text(conf + "\n".join(lines) + "\n")
        return config

    def start(self):
        assert self._process is None, "already running"
        # The rules as the session has them: devices enrolled while this broker was stopped too.
        broker_setup.write_access(self.folder, self.pki.access)
        self._process = subprocess.Popen([find_mosquitto(), "-c", str(self._config)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not wait_for(self._accepting) or self._process.poll() is not None:
            exited = self._process.poll() is not None
            error = self._process.stderr.read().decode(errors="replace") if exited else "timed out"
            self.stop()
            raise RuntimeError("mosquitto did not start: %s\n%s" % (error, self.log()))
        self.pki.brokers.append(self)

    def _accepting(self):
        if self._process.poll() is not None:
            return True  # exited: start() reports it
        return accepting(self.port)  # mosquitto opens all its listeners before it accepts on any

    def stop(self):
        """Stop mosquitto (SIGTERM: it saves its persistence file first) and wait for it."""
        if self in self.pki.brokers:
            self.pki.brokers.remove(self)
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stderr.close()

    def restart(self):
        self.stop()
        self.start()

    def log(self):
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


def _recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class Mqtt311Only:
    """A loopback proxy to the broker that acts as a broker without MQTT 5: it refuses a CONNECT of
    protocol level 5 as a 3.1.1 broker does (CONNACK code 1, then close) and relays the rest."""

    def __init__(self, broker_port):
        self.broker_port = broker_port
        self._listener = socket.create_server((HOST, 0))
        self.url = "mqtt://%s:%d" % (HOST, self._listener.getsockname()[1])
        self.refused = 0
        self._sockets = [self._listener]
        self._threads = []
        self._spawn(self._accept_loop)

    def _spawn(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            self._sockets.append(client)
            self._spawn(self._serve, client)

    def _serve(self, client):
        try:
            head = _recv_exactly(client, 2)  # CONNECT type, first remaining-length byte
            while head[-1] & 0x80:
                head += _recv_exactly(client, 1)
            name_length = _recv_exactly(client, 2)
            name = _recv_exactly(client, int.from_bytes(name_length, "big"))
            level = _recv_exactly(client, 1)
            if level == b"\x05":
                self.refused += 1
                client.sendall(b"\x20\x02\x00\x01")
                client.close()
                return
            upstream = socket.create_connection((HOST, self.broker_port))
            self._sockets.append(upstream)
            upstream.sendall(head + name_length + name + level)
        except OSError:
            client.close()
            return
        self._spawn(self._pipe, upstream, client)
        self._pipe(client, upstream)

    @staticmethod
    def _pipe(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            sock.close()

    def close(self):
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)
