"""Postfix as a real peer: `smtp-source` load into tern's MX listener, and a
private Postfix instance (own config and queue directories under the test's
temporary directory, no DNS) relaying a message into tern."""

import os
import smtplib
import subprocess
import time

import pytest

from conftest import require_binary
from postfix_peer import RelayingPostfix
from ternlib import make_message, maildir_files, wait_for_messages, wait_until


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


@pytest.fixture
def postfix_relay(world_readable_tmp):
    require_binary("postfix")
    instances = []

    def make(relayhost_port):
        p = RelayingPostfix(os.path.join(world_readable_tmp, "postfix"), "[127.0.0.1]:%d" % relayhost_port)
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
