"""`vendor serve --workers N`: N worker processes on one host, kept running.

Each worker is its own process (`thingsdk vendor serve --part I/N` with its own client id and
database connection), so the workers' Python work runs on as many cores as the host has, and
each serves the devices of its part (`thingsdk.seller.serve.part_of`). The command checks the
catalog, the key and the database once before any worker starts. The supervisor starts them, says when one exits and starts it again: at once the first time, then after a delay that
doubles while it keeps exiting within STEADY seconds of its start, up to MAX_DELAY. On `stop()` it
sends each worker SIGTERM and waits for it, SIGKILL after `grace` seconds. A worker killed at any
point has acknowledged only what it kept, and its next process, with the same client id, is
given the rest by the broker. A worker whose supervisor is gone stops by itself (see
`cmd_vendor_serve`), so a supervisor started again never races its old workers' sessions.
"""

import logging
import signal
import subprocess
import threading
import time

FIRST_DELAY = 0.2  # seconds before a worker is started again after its second quick exit
MAX_DELAY = 60.0
STEADY = 60.0  # a worker that ran this long before it exited is started again at once
log = logging.getLogger(__name__)


def exit_status(returncode):
    """How a process ended, in words."""
    if returncode < 0:
        try:
            return "killed by %s" % signal.Signals(-returncode).name
        except ValueError:
            return "killed by signal %d" % -returncode
    return "exit status %d" % returncode


class Workers:
    """Runs one process per argv in `commands` until `stop()`, starting again any that exits.
    `processes` are the running Popen objects (None while one waits to start again); `restarts`
    counts the starts after an exit."""

    def __init__(self, commands, grace=30.0, popen=subprocess.Popen):
        self.commands = [list(c) for c in commands]
        self.grace = grace
        self.popen = popen
        self.processes: list = [None] * len(self.commands)
        self.restarts = 0
        self._stop = threading.Event()

    def stop(self):
        """Ask run() to stop the workers and return (safe from a signal handler)."""
        self._stop.set()

    def signal(self, signum):
        """Send every running worker a signal (SIGUSR1: each logs its counters)."""
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.send_signal(signum)

    def run(self, poll=0.1):
        """Supervise until stopped; 0 if every worker then stopped cleanly, else 1."""
        count = len(self.commands)
        started, due = [0.0] * count, [0.0] * count
        quick = [0] * count  # exits in a row within STEADY seconds of the start
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                for i, process in enumerate(self.processes):
                    if process is None and now >= due[i]:
                        self._start(i)
                        started[i] = now
                    elif process is not None and process.poll() is not None:
                        ran = now - started[i]
                        quick[i] = 0 if ran >= STEADY else quick[i] + 1
                        delay = (min(MAX_DELAY, FIRST_DELAY * 2 ** (quick[i] - 2))
                                 if quick[i] > 1 else 0.0)
                        due[i] = now + delay
                        self.processes[i] = None
                        self.restarts += 1
                        log.error("vendor worker %d (pid %d) stopped after %.1f s, %s; starting "
                                  "it again in %.1f s", i, process.pid, ran,
                                  exit_status(process.returncode), delay)
                self._stop.wait(poll)
        finally:
            clean = self._end()
        return 0 if clean else 1

    def _start(self, i):
        process = self.processes[i] = self.popen(self.commands[i])
        log.info("vendor worker %d of %d started, pid %d", i, len(self.commands), process.pid)

    def _end(self):
        """SIGTERM to every worker, SIGKILL to any still running after `grace`; True if all
        exited cleanly."""
        running = [p for p in self.processes if p is not None and p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        clean = True
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("vendor worker pid %d did not stop in %.0f s: killing it",
                          process.pid, self.grace)
                process.kill()
                process.wait()
            clean = clean and process.returncode == 0
        log.info("vendor workers stopped (%d restarted on the way)", self.restarts)
        return clean
