"""A `skiff dev` cluster for the tests: three nodes in one process on
loopback, started once per test session and stopped at its end.

SKIFF_BIN names the binary (`make test-python` builds bin/skiff and sets
it); without it the fixture builds one with `go build`.
"""

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))

import skiff  # noqa: E402


def _binary(tmp):
    path = os.environ.get("SKIFF_BIN")
    if path:
        return path
    path = os.path.join(tmp, "skiff")
    subprocess.run(["go", "build", "-o", path, "./cmd/skiff"], cwd=REPO, check=True,
                   env=dict(os.environ, CGO_ENABLED="0"))
    return path


def _ports_free(base, nodes):
    for i in range(nodes):
        for off in range(4):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                s = socket.socket(socket.AF_INET, kind)
                try:
                    s.bind(("127.0.0.1", base + 10 * i + off))
                except OSError:
                    return False
                finally:
                    s.close()
    return True


class DevCluster:
    def __init__(self, bin_path, brokers):
        self.bin = bin_path
        self.brokers = brokers

    def cli(self, *args, input=None, timeout=60):
        """Runs the skiff CLI against the cluster; returns stdout."""
        env = dict(os.environ, SKIFF_BROKERS=",".join(self.brokers))
        out = subprocess.run([self.bin, *args], input=input, capture_output=True, env=env, timeout=timeout)
        if out.returncode != 0:
            raise AssertionError("skiff %s: exit %d\n%s" % (" ".join(args), out.returncode, out.stderr.decode()))
        return out.stdout.decode()


class _Dev:
    """A running `skiff dev`: its process and the lines it printed once
    ready."""

    def __init__(self, bin_path, args, ready_lines):
        for _ in range(50):
            base = random.randrange(20000, 40000, 10)
            if _ports_free(base, 3):
                break
        else:
            pytest.fail("no free ports for skiff dev")
        self.proc = subprocess.Popen([bin_path, "dev", "--nodes", "3", "--base-port", str(base), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stderr = []
        threading.Thread(target=lambda: stderr.extend(self.proc.stderr), daemon=True).start()
        self.lines = []

        def read_lines():
            while len(self.lines) < ready_lines:
                line = self.proc.stdout.readline()
                if not line:
                    return
                self.lines.append(line.decode().strip())

        reader = threading.Thread(target=read_lines, daemon=True)
        reader.start()
        reader.join(120)
        if len(self.lines) < ready_lines:
            self.proc.kill()
            pytest.fail("skiff dev not ready: %r\n%s" % (self.lines, b"".join(stderr).decode(errors="replace")[-4000:]))

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def skiff_bin(tmp_path_factory):
    return _binary(str(tmp_path_factory.mktemp("bin")))


@pytest.fixture(scope="session")
def cluster(skiff_bin):
    dev = _Dev(skiff_bin, [], 1)
    line = dev.lines[0]
    if not line.startswith("brokers: "):
        dev.stop()
        pytest.fail("skiff dev printed %r" % line)
    try:
        yield DevCluster(skiff_bin, line[len("brokers: "):].split(","))
    finally:
        dev.stop()


@pytest.fixture(scope="session")
def secure_cluster(skiff_bin, tmp_path_factory):
    """`skiff dev --secure`: TLS everywhere, authentication on, User:admin
    (the printed client certificate) as super user. Yields the variables of
    the `export` lines it prints."""
    dev = _Dev(skiff_bin, ["--secure", "--dir", str(tmp_path_factory.mktemp("secure"))], 5)
    env = {}
    for line in dev.lines:
        if line.startswith("export ") and "=" in line:
            k, v = line[len("export "):].split("=", 1)
            env[k] = v.strip("'\"")
    try:
        for k in ("SKIFF_BROKERS", "SKIFF_TLS_CA_FILE", "SKIFF_TLS_CERT_FILE", "SKIFF_TLS_KEY_FILE"):
            assert env.get(k), "skiff dev --secure printed no %s: %r" % (k, dev.lines)
        yield env
    finally:
        dev.stop()


@pytest.fixture()
def client(cluster):
    c = skiff.Client(cluster.brokers, request_timeout=30)
    yield c
    c.close()


@pytest.fixture()
def topic_name(request):
    """A topic name unique to the test."""
    return "py-" + request.node.name.replace("_", "-").replace("[", "-").replace("]", "")[:60] + "-%d" % random.randrange(1 << 30)


def wait_for(what, cond, timeout=30.0, interval=0.05):
    """Polls cond until it is true or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)
