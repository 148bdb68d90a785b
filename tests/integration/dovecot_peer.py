"""A private Dovecot for tern's integration tests: `dovecot -F` with its
configuration, sockets, state and log under one directory (never the system
instance), listening on loopback only. The caller gives the lines that make
it what the test needs (an LMTP server with a passwd-file of users, or only
the auth service whose socket Postfix uses for SASL); this module adds the
settings every such instance shares and waits for the socket at start."""

import os
import subprocess

from ternlib import stop_process, wait_until

DOVECOT = "/usr/sbin/dovecot"


def read_tail(path, lines=60, missing="(no log)"):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except FileNotFoundError:
        return missing


class Dovecot:
    """`name` tells instances apart; `socket_name` is the listener (under
    <root>/run) whose appearance means Dovecot is ready; `lines` are the
    instance's own settings (protocols, passdb/userdb, services)."""

    def __init__(self, root, name, socket_name, lines):
        self.root = root
        self.run_dir = os.path.join(root, "run")
        self.socket = os.path.join(self.run_dir, socket_name)
        self.log = os.path.join(root, "dovecot.log")
        for sub in ("run", "state"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        self.conf = os.path.join(root, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(list(lines) + [
                "ssl = no",
                "listen = 127.0.0.1",
                "base_dir = " + self.run_dir,
                "state_dir = " + os.path.join(root, "state"),
                "instance_name = tern-it-%s-%d" % (name, os.getpid()),
                "log_path = " + self.log,
                "info_log_path = " + self.log,
                "default_internal_user = dovecot",
                "default_login_user = dovenull",
                "service anvil {\n  chroot =\n}",
                "",
            ]))
        self.proc = None

    def log_text(self):
        return read_tail(self.log, 10000, "(no Dovecot log)")

    def start(self):
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("dovecot exited early:\n" + self.log_text())
            return os.path.exists(self.socket)
        wait_until(up, 10, what="Dovecot's socket " + self.socket)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            stop_process(self.proc, 10)
        self.proc = None
