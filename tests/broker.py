"""A real mosquitto broker for tests, with a test PKI and the thingsdk ACL.

The broker listens on 127.0.0.1 only (THINGSDK_BROKER_HOST for a rig's real board): a plain
listener (anonymous, no ACL) for simple tests, and a mutual-TLS listener where the client certificate's CN is the username and the ACL from
`thingsdk.topics.mosquitto_acl` confines each device to its own topics.
"""

import datetime
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from thingsdk import topics

# A real board on a test rig reaches the broker over the LAN: hil/README.md.
HOST = os.environ.get("THINGSDK_BROKER_HOST", "127.0.0.1")
VENDOR = "vendor"


def find_mosquitto():
    """The mosquitto binary (Debian puts it in /usr/sbin, which is not always on PATH)."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(condition, timeout=10.0, interval=0.02):
    """Poll condition() until it is truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Pki:
    """A test CA with a server certificate for 127.0.0.1/localhost and client certificates."""

    def __init__(self, folder):
        self.folder = folder
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "thingsdk test CA")])
        self._ca_name = ca_name
        self._ca_cert = (
            self._builder(ca_name, self._ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                           critical=True)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))
        self.server = self._issue("server", ExtendedKeyUsageOID.SERVER_AUTH, x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]))

    def client(self, common_name):
        """(cert_file, key_file) of a client certificate whose CN is common_name."""
        return self._issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH)

    def _builder(self, subject, public_key):
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self._ca_name)
                .public_key(public_key).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=2)))

    def _issue(self, common_name, usage, *extensions):
        cert_file, key_file = self.folder / (common_name + ".pem"), self.folder / (common_name + ".key")
        if not cert_file.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            builder = self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
                                    key.public_key())
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            for extension in extensions:
                builder = builder.add_extension(extension, critical=False)
            cert = builder.sign(self._ca_key, hashes.SHA256())
            key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
            cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(cert_file), str(key_file)


class Broker:
    """One mosquitto process on fixed loopback ports; start(), stop() and restart() keep them."""

    def __init__(self, folder, pki, persistence=False):
        self.folder = folder
        self.pki = pki
        self.persistence = persistence
        self.port, self.tls_port = free_port(), free_port()
        self.url = "mqtt://%s:%d" % (HOST, self.port)
        self.tls_url = "mqtts://%s:%d" % (HOST, self.tls_port)
        self.log_file = folder / "mosquitto.log"
        self._process = None
        self._config = self._write_config()

    def _write_config(self):
        acl = self.folder / "acl"
        acl.write_text(topics.mosquitto_acl([VENDOR]))
        cert_file, key_file = self.pki.server
        lines = [
            # mosquitto started as root drops to the `mosquitto` user, which cannot read our files
            "user %s" % pwd.getpwuid(os.getuid()).pw_name,
            "per_listener_settings true",
            "log_dest file %s" % self.log_file,
            "log_type all",
            "persistence %s" % ("true" if self.persistence else "false"),
            "persistence_location %s/" % self.folder,
            # The default (1000) drops QoS 1 messages queued for a slow subscriber: a vendor
            # taking a burst from a whole fleet needs more room.
            "max_queued_messages 100000",
            "",
            "listener %d %s" % (self.port, HOST),
            "allow_anonymous true",
            "",
            "listener %d %s" % (self.tls_port, HOST),
            "cafile %s" % self.pki.ca_file,
            "certfile %s" % cert_file,
            "keyfile %s" % key_file,
            "require_certificate true",
            "use_identity_as_username true",
            "acl_file %s" % acl,
        ]
        config = self.folder / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self):
        assert self._process is None, "already running"
        self._process = subprocess.Popen([find_mosquitto(), "-c", str(self._config)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not wait_for(self._accepting) or self._process.poll() is not None:
            exited = self._process.poll() is not None
            error = self._process.stderr.read().decode(errors="replace") if exited else "timed out"
            self.stop()
            raise RuntimeError("mosquitto did not start: %s\n%s" % (error, self.log()))

    def _accepting(self):
        if self._process.poll() is not None:
            return True  # exited: start() reports it
        try:  # mosquitto opens all its listeners before it accepts on any
            socket.create_connection((HOST, self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self):
        """Stop mosquitto (SIGTERM: it saves its persistence file first) and wait for it."""
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
