"""A real PostgreSQL server for tests: Debian's binaries (package `postgresql`), a cluster made by
initdb in a temporary folder, reached over a Unix socket only, and a fresh database per test.

PostgreSQL refuses to run as root: a root test run starts it as the `postgres` user the Debian
package creates, in a folder that user owns.
"""

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile

from broker import free_port


def find_bin():
    """The folder of pg_ctl and initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return os.path.dirname(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    return os.path.dirname(pg_ctl) if pg_ctl else None


class Postgres:
    """One PostgreSQL cluster, started at construction; `database()` makes a fresh database and
    returns its connection string; `stop()` ends the server and removes its folder."""

    def __init__(self):
        self.bin = find_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        self.folder = tempfile.mkdtemp(prefix="thingsdk-pg-")
        self._as = []
        if os.getuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.data = os.path.join(self.folder, "data")
        self.log = os.path.join(self.folder, "postgres.log")
        self._names = itertools.count(1)
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        options = "-k %s -p %d -c listen_addresses=''" % (self.folder, self.port)
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "start")

    def _run(self, tool, *args):
        done = subprocess.run(self._as + [os.path.join(self.bin, tool)] + list(args),
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError("%s failed: %s%s" % (tool, done.stdout, done.stderr))

    def conninfo(self, dbname="postgres"):
        return "host=%s port=%d user=postgres dbname=%s" % (self.folder, self.port, dbname)

    def database(self):
        """The connection string of a new, empty database."""
        import psycopg

        name = "test_%d" % next(self._names)
        with psycopg.connect(self.conninfo(), autocommit=True) as db:
            db.execute("CREATE DATABASE %s" % name)
        return self.conninfo(name)

    def stop(self):
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
