"""A real `patrolsync serve` on loopback, with the demo grid, for the bindings' tests."""

import json
import os
import subprocess
import time

import pytest

BIN = os.environ.get("PATROLSYNC_BIN", "patrolsync")


class Server:
    def __init__(self, data_dir):
        self.data_dir = str(data_dir)
        self.proc = subprocess.Popen(
            [BIN, "serve", "--data-dir", self.data_dir,
             "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "PATROLSYNC_LOG": "warn"},
        )
        # The first line names the bound addresses:
        # "patrolsync 0.1.0 listening on udp 127.0.0.1:PORT (ALPN patrolsync/1), admin http://…"
        first = self.proc.stdout.readline()
        if "listening on udp " not in first:
            self.proc.kill()
            raise RuntimeError(f"the server did not start: {first!r}")
        self.address = first.split("listening on udp ", 1)[1].split(" ", 1)[0]

    def admin(self, *args):
        out = subprocess.run([BIN, "admin", "--data-dir", self.data_dir, *args],
                             check=True, capture_output=True, text=True)
        return out.stdout

    def admin_json(self, *args):
        return json.loads(self.admin(*args, "--json"))

    def enrollment_code(self, user, role, grid):
        return self.admin("enroll", "--user", user, "--role", role, "--grid", grid,
                          "--server", self.address).strip()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "server")
    s.admin("seed-demo")
    yield s
    s.stop()
