"""Helpers for tern's integration tests: run the real `tern` binary.

TernServer writes a TOML configuration into a private directory (free
loopback ports, accounts created with `tern account add`, an aliases file,
TLS material), starts `tern serve`, waits for `event=ready` in its log and
stops it with SIGTERM, checking the exit status. The other helpers read
Maildirs with the `email` module, poll for a condition with a deadline
instead of sleeping, run `tern queue ...` against the control socket and
speak raw SMTP where a test needs to see exact bytes.
"""

import email
import email.policy
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import time

TERN_BIN = os.environ.get("TERN_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tern")

LOCAL_DOMAIN = "example.test"
OTHER_DOMAIN = "other.test"
PASSWORDS = {
    "alice@example.test": "alice-secret-1",
    "bob@example.test": "bob-secret-2",
    "carol@example.test": "carol-secret-3",
}
DEFAULT_ALIASES = """\
# test aliases
sales: alice, bob
info@example.test: carol
@other.test: carol@example.test
"""


class TimeoutExpired(AssertionError):
    pass


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Polls `predicate` until it returns a truthy value; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutExpired("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


_handed_out = set()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999


def stop_process(proc, timeout):
    """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit status,
    or None when it had to be killed."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def free_port():
    """A TCP port on 127.0.0.1 that is free now and stays free: taken below
    the kernel's ephemeral range, so that no client connection of the test
    can be given it as its source port before the server binds it (a port
    from bind(0) can), and never handed out twice in one test run."""
    low, _high = _ephemeral_range()
    top = min(low, 65536)
    for _ in range(1000):
        port = random.randrange(max(1024, top - 20000), top)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def make_self_signed_cert(directory, hostname="mx.example.test"):
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=" + hostname, "-keyout", key, "-out", cert],
            check=True, capture_output=True)
    return cert, key


def client_tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def toml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class TernServer:
    """One tern instance with its own data dir, config and ports."""

    def __init__(self, root, name="tern", cert=None, key=None, local_domains=(LOCAL_DOMAIN, OTHER_DOMAIN),
                 accounts=None, aliases=DEFAULT_ALIASES, trusted_networks=(), limits=None, lmtp=None,
                 listeners=("mx", "submission", "submissions"), queue=None, delivery_workers=None, user=None,
                 dns=None, authserv_id=None, detail_folder=False, extra_config="",
                 verify_sender_identity="disabled", reject_unknown_sender_domain=False, delivery=None):
        self.root = os.path.join(root, name)
        os.makedirs(self.root, exist_ok=True)
        self.hostname = "mx.example.test"
        self.data_dir = os.path.join(self.root, "data")
        self.mail_root = os.path.join(self.root, "mail")
        self.config_path = os.path.join(self.root, "tern.toml")
        self.log_path = os.path.join(self.root, "tern.log")
        self.aliases_path = os.path.join(self.root, "aliases")
        self.accounts_path = os.path.join(self.root, "accounts")
        self.ports = {role: free_port() for role in listeners}
        self.proc = None
        self.exit_codes = []
        lines = [
            "# written by tests/integration/ternlib.py",
            "[server]",
            "hostname = " + toml_str(self.hostname),
            "data_dir = " + toml_str(self.data_dir),
            "threads = 2",
        ] + (["user = " + toml_str(user)] if user else []) + [
            "",
        ]
        for role, port in self.ports.items():
            lines += ["[[listener]]", "role = " + toml_str(role), 'address = "127.0.0.1:%d"' % port]
            # Most tests send as a local user from 127.0.0.1 without AUTH; the
            # issue 5 default (strict on mx) is tested by test_policy_identity.py.
            if role == "mx" and verify_sender_identity is not None:
                lines += ["verify_sender_identity = " + toml_str(verify_sender_identity)]
            lines += [""]
        if cert:
            lines += ["[tls]", "cert = " + toml_str(cert), "key = " + toml_str(key), ""]
        lines += ["[domains]", "local = [" + ", ".join(toml_str(d) for d in local_domains) + "]", ""]
        lines += ["[relay]", "trusted_networks = [" + ", ".join(toml_str(n) for n in trusted_networks) + "]", ""]
        lines += ["[delivery]"]
        if lmtp:
            lines += ["lmtp = " + toml_str(lmtp)]
        else:
            lines += ["maildir = " + toml_str(self.mail_root + "/{domain}/{user}")]
        if delivery_workers:
            lines += ["workers = %d" % delivery_workers]
        if detail_folder:
            lines += ["detail_folder = true"]
        # More [delivery] keys, values as TOML text: {"data_done_timeout": '"2s"'}.
        lines += ["%s = %s" % kv for kv in (delivery or {}).items()]
        lines += ["", "[aliases]", "file = " + toml_str(self.aliases_path), ""]
        lines += ["[accounts]", "file = " + toml_str(self.accounts_path), ""]
        if queue:
            lines += ["[queue]"] + ["%s = %s" % kv for kv in queue.items()] + [""]
        if limits:
            lines += ["[limits]"] + ["%s = %s" % (k, v) for k, v in limits.items()] + [""]
        # Inbound SPF/DKIM/DMARC/ARC needs DNS: only with a test DNS server.
        lines += ["[auth]", "verify_inbound = " + ("true" if dns else "false")]
        if authserv_id:
            lines += ["authserv_id = " + toml_str(authserv_id)]
        lines += [""]
        if dns:
            lines += ["[dns]", "nameservers = [" + ", ".join(toml_str(n) for n in dns) + "]", "timeout = 5", ""]
        if not dns and "[[route]]" not in extra_config:
            # Without a test DNS server nothing may leave for the internet
            # (tests never reach it): remote recipients stay queued with a
            # transient reply, as on a server whose uplink is down.
            lines += ["[[transport]]", 'name = "no-network"', 'kind = "fail"',
                      'message = "4.4.0 test server without network: remote delivery disabled"', "",
                      "[[route]]", 'transport = "no-network"', ""]
        # Many test sender domains publish only TXT records (or there is no
        # DNS at all): the issue 5 default (reject_unknown_sender_domain = true)
        # is tested where the test DNS has A/MX records for the senders; None
        # leaves tern's default. A value in extra_config's [policy] wins.
        if reject_unknown_sender_domain is not None and \
                not re.search(r"^\s*reject_unknown_sender_domain\s*=", extra_config, re.M):
            key = "reject_unknown_sender_domain = " + ("true" if reject_unknown_sender_domain else "false")
            if re.search(r"^\[policy\][ \t]*$", extra_config, re.M):
                extra_config = re.sub(r"^\[policy\][ \t]*$", lambda m: "[policy]\n" + key, extra_config, count=1,
                                      flags=re.M)
            else:
                lines += ["[policy]", key, ""]
        if extra_config:  # more TOML appended as is (e.g. [[transport]] / [[route]] tables)
            lines += [extra_config, ""]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines))
        with open(self.aliases_path, "w") as f:
            f.write(aliases)
        for address, password in (PASSWORDS if accounts is None else accounts).items():
            self.run_cli(["account", "add", address], stdin=password + "\n")

    # -- process control --------------------------------------------------

    def run_cli(self, args, stdin=None, check=True, timeout=20):
        res = subprocess.run([TERN_BIN] + args + ["--config", self.config_path], input=stdin,
                             capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError("tern %s failed (%d): %s%s" % (" ".join(args), res.returncode, res.stdout,
                                                                res.stderr))
        return res

    def start(self, timeout=15):
        assert self.proc is None, "already running"
        self._log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([TERN_BIN, "serve", "--config", self.config_path], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("tern exited with %s during start-up\n%s" % (self.proc.returncode,
                                                                                 self.log_tail()))
            return "event=ready" in self.log_since_start()
        wait_until(ready, timeout, what="event=ready from tern")
        return self

    def stop(self, timeout=40):
        """SIGTERM and wait; returns the exit status (asserted 0 by the fixture)."""
        if self.proc is None:
            return None
        rc = stop_process(self.proc, timeout)
        if rc is None:
            rc = "hung after SIGTERM (killed)"
        self.proc = None
        self.exit_codes.append(rc)
        return rc

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- logs ------------------------------------------------------------

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_since_start(self):
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode("utf-8", "replace")

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- addresses ---------------------------------------------------------

    def addr(self, role="mx"):
        return ("127.0.0.1", self.ports[role])

    def maildir(self, user, domain=LOCAL_DOMAIN):
        return os.path.join(self.mail_root, domain, user)

    # -- queue -------------------------------------------------------------

    def queue(self, *args, check=True):
        return self.run_cli(["queue"] + list(args), check=check)

    def queue_list(self):
        return parse_queue_list(self.queue("list").stdout)


# -- queue output ------------------------------------------------------------

QUEUE_HEADER = re.compile(r"^(\S+)  size=(\d+)  arrived=(\S+)  from=<([^>]*)>(  HELD)?(  delay-warned)?$")
QUEUE_RCPT = re.compile(r"^    to=<([^>]*)>(?: orig=<([^>]*)>)? status=(\w+) attempts=(\d+)")


def parse_queue_list(text):
    """{id: {"from", "held", "size", "rcpts": [{"to", "status", "attempts", "line"}]}}"""
    out = {}
    current = None
    for line in text.splitlines():
        m = QUEUE_HEADER.match(line)
        if m:
            current = {"from": m.group(4), "held": bool(m.group(5)), "delay_warned": bool(m.group(6)),
                       "size": int(m.group(2)), "rcpts": []}
            out[m.group(1)] = current
            continue
        m = QUEUE_RCPT.match(line)
        if m and current is not None:
            current["rcpts"].append({"to": m.group(1), "orig": m.group(2), "status": m.group(3),
                                     "attempts": int(m.group(4)), "line": line})
    return out


# -- Maildir ---------------------------------------------------------------

def maildir_files(maildir):
    files = []
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        if os.path.isdir(d):
            files += [os.path.join(d, n) for n in sorted(os.listdir(d))]
    return files


def all_maildir_files(root):
    files = []
    for dirpath, _dirs, names in os.walk(root):
        if os.path.basename(dirpath) in ("new", "cur"):
            files += [os.path.join(dirpath, n) for n in names]
    return files


def read_message(path):
    with open(path, "rb") as f:
        return email.message_from_bytes(f.read(), policy=email.policy.compat32)


def maildir_messages(maildir):
    return [read_message(p) for p in maildir_files(maildir)]


def wait_for_messages(maildir, count, timeout=10.0):
    """Waits until `maildir` holds at least `count` messages; returns them."""
    wait_until(lambda: len(maildir_files(maildir)) >= count, timeout,
               what="%d message(s) in %s (have %d)" % (count, maildir, len(maildir_files(maildir))))
    return maildir_messages(maildir)


def find_by_subject(messages, subject):
    return [m for m in messages if m.get("Subject") == subject]


def make_message(subject, sender="sender@example.net", to="alice@example.test", body="hello\r\n",
                 message_id=None):
    mid = message_id or "<%s@test.invalid>" % re.sub(r"[^A-Za-z0-9.-]", "-", subject)
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: %s\r\n"
            "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n%s" % (sender, to, subject, mid, body))


# -- raw SMTP ----------------------------------------------------------------

class RawSmtp:
    """A byte-level SMTP client: send exactly what the test says, read replies."""

    def __init__(self, addr, timeout=10.0, tls=False):
        self.sock = socket.create_connection(addr, timeout=timeout)
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by server; unread: %r" % self.buf)
        self.buf += chunk

    def read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """Reads one (possibly multi-line) reply: (code, [text lines])."""
        lines = []
        while True:
            line = self.read_line()
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines

    def reply_text(self):
        code, lines = self.reply()
        return "%d %s" % (code, "\n".join(lines))

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def ehlo(self, name="client.example.net"):
        code, lines = self.cmd("EHLO " + name)
        assert code == 250, (code, lines)
        return lines

    def starttls(self):
        code, lines = self.cmd("STARTTLS")
        assert code == 220, (code, lines)
        assert self.buf == b"", "server sent bytes after 220 STARTTLS: %r" % self.buf
        self.sock = client_tls_context().wrap_socket(self.sock)

    def closed_by_peer(self, timeout=5.0):
        """True when the server closes the connection (EOF) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def queued_id(text):
    m = re.search(r"queued as (\S+)", text)
    return m.group(1) if m else None
