"""Postfix as a real peer: `smtp-source` load into tern's MX listener, and a
private Postfix instance (own config and queue directories under the test's
temporary directory, no DNS) relaying a message into tern."""

import os
import shutil
import smtplib
import subprocess
import time

import pytest

from conftest import require_binary
from ternlib import free_port, make_message, maildir_files, wait_for_messages, wait_until


def test_smtp_source_2000_messages_all_delivered(tern_factory):
    require_binary("smtp-source")
    t = tern_factory(delivery_workers=4)
    started = time.monotonic()
    res = subprocess.run(
        ["smtp-source", "-s", "20", "-m", "2000", "-l", "4096", "-f", "a@example.net", "-t", "alice@example.test",
         "127.0.0.1:%d" % t.ports["mx"]], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    accepted = time.monotonic() - started
    maildir = t.maildir("alice")
    wait_until(lambda: len(maildir_files(maildir)) >= 2000, 90, interval=0.2,
               what="2000 messages in alice's Maildir (have %d)" % len(maildir_files(maildir)))
    time.sleep(0.3)  # nothing beyond 2000 may show up
    assert len(maildir_files(maildir)) == 2000
    wait_until(lambda: "queue is empty" in t.queue("list").stdout, 30, what="an empty queue")
    print("smtp-source: 2000 x 4 KiB accepted in %.2fs" % accepted)


class PrivatePostfix:
    """A Postfix instance living entirely under `root` (not the system one)."""

    def __init__(self, root, relayhost_port):
        self.root = root
        self.config_dir = os.path.join(root, "etc")
        self.queue_dir = os.path.join(root, "spool")
        self.data_dir = os.path.join(root, "data")
        self.log = os.path.join(root, "maillog")
        self.port = free_port()
        for d in (self.config_dir, self.queue_dir, self.data_dir):
            os.makedirs(d, exist_ok=True)
        shutil.copy("/etc/postfix/main.cf", self.config_dir)
        shutil.copy("/etc/postfix/master.cf", self.config_dir)
        shutil.chown(self.data_dir, "postfix")
        settings = {
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "maillog_file": self.log,
            "maillog_file_prefixes": root,  # a log outside /var must be allowed explicitly
            "syslog_name": "postfix-terntest",
            "myhostname": "relay.example.net",
            "mydomain": "example.net",
            "myorigin": "example.net",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "relayhost": "[127.0.0.1]:%d" % relayhost_port,
            "smtp_dns_support_level": "disabled",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks reject",
            "alias_maps": "",
            "alias_database": "",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "compatibility_level": "3.6",
        }
        self.postconf(["-e"] + ["%s=%s" % kv for kv in settings.items()])
        # Own SMTP port instead of 25; no chroot (the queue directory is private).
        self.postconf(["-M#", "smtp/inet"])
        self.postconf(["-M", "%d/inet=%d inet n - n - - smtpd" % (self.port, self.port)])
        self.postconf(["-F", "*/*/chroot=n"])

    def postconf(self, args):
        subprocess.run(["postconf", "-c", self.config_dir] + args, check=True, capture_output=True, text=True)

    def postfix(self, *args, check=True):
        res = subprocess.run(["postfix", "-c", self.config_dir] + list(args), capture_output=True, text=True,
                             timeout=60)
        if check and res.returncode != 0:
            raise AssertionError("postfix %s failed: %s%s\n%s" % (" ".join(args), res.stdout, res.stderr,
                                                                  self.log_tail()))
        return res

    def log_tail(self):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-40:])
        except FileNotFoundError:
            return "(no Postfix log)"

    def start(self):
        self.postfix("check", check=False)
        self.postfix("start")

        def listening():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as s:
                    return s.noop()[0] == 250
            except OSError:
                return False
        wait_until(listening, 20, interval=0.2, what="private Postfix on port %d" % self.port)

    def stop(self):
        self.postfix("stop", check=False)


@pytest.fixture
def postfix_relay(world_readable_tmp):
    require_binary("postfix")
    instances = []

    def make(relayhost_port):
        p = PrivatePostfix(os.path.join(world_readable_tmp, "postfix"), relayhost_port)
        instances.append(p)
        p.start()
        return p
    yield make
    for p in instances:
        p.stop()


def test_postfix_relays_into_tern(tern, postfix_relay):
    pf = postfix_relay(tern.ports["mx"])
    with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="origin.example.net", timeout=15) as s:
        refused = s.sendmail("writer@example.net", ["alice@example.test"],
                             make_message("through postfix", sender="writer@example.net").encode())
        assert refused == {}
    try:
        [msg] = wait_for_messages(tern.maildir("alice"), 1, timeout=30)
    except AssertionError as e:
        raise AssertionError("%s\nPostfix log:\n%s" % (e, pf.log_tail()))
    assert msg["Subject"] == "through postfix"
    assert msg["Return-Path"] == "<writer@example.net>"
    received = [" ".join(r.split()) for r in msg.get_all("Received")]
    assert len(received) == 2, received
    # Newest first: tern's, naming Postfix's HELO; then Postfix's own.
    assert received[0].startswith("from relay.example.net ("), received[0]
    assert "by mx.example.test (tern) with ESMTP" in received[0]
    assert "for <alice@example.test>" in received[0]
    assert received[1].startswith("from origin.example.net"), received[1]
    assert "by relay.example.net (Postfix)" in received[1]
