"""Local delivery through LMTP (RFC 2033) into a private Dovecot instance:
tern accepts mail for its accounts over SMTP and hands it to Dovecot, which
stores it in its own Maildir or refuses recipients it does not know."""

import os
import smtplib

import pytest

from conftest import require_binary
from dovecot_peer import DOVECOT, Dovecot
from ternlib import make_message, maildir_messages, parse_queue_list, wait_for_messages, wait_until

NOBODY = 65534


class PrivateDovecot(Dovecot):
    """An LMTP server under `root` that knows alice@example.test only; mail
    belongs to nobody (Dovecot does not deliver as root)."""

    def __init__(self, root):
        self.mail_root = os.path.join(root, "mail")
        os.makedirs(self.mail_root, exist_ok=True)
        os.chown(self.mail_root, NOBODY, NOBODY)
        users = os.path.join(root, "users")
        with open(users, "w") as f:
            f.write("alice@example.test::%d:%d::%s::\n" % (NOBODY, NOBODY, os.path.join(self.mail_root,
                                                                                          "example.test", "alice")))
        super().__init__(root, "lmtp", "lmtp", [
            "protocols = lmtp",
            "first_valid_uid = 1",
            "mail_location = maildir:%s/%%d/%%n" % self.mail_root,
            "passdb {\n  driver = passwd-file\n  args = %s\n}" % users,
            "userdb {\n  driver = passwd-file\n  args = %s\n}" % users,
            "service lmtp {\n  unix_listener lmtp {\n    mode = 0666\n  }\n}",
        ])

    def maildir(self, user, domain="example.test"):
        return os.path.join(self.mail_root, domain, user)


@pytest.fixture
def dovecot(world_readable_tmp):
    require_binary(DOVECOT)
    if not os.path.exists("/usr/lib/dovecot/lmtp"):
        pytest.fail("dovecot-lmtpd is not installed (/usr/lib/dovecot/lmtp missing)")
    d = PrivateDovecot(os.path.join(world_readable_tmp, "dovecot"))
    d.start()
    yield d
    d.stop()


def test_delivery_through_dovecot_lmtp(tern_factory, dovecot):
    t = tern_factory(lmtp="unix:" + dovecot.socket)
    with smtplib.SMTP("127.0.0.1", t.ports["mx"], local_hostname="peer.example.net", timeout=15) as s:
        s.sendmail("sender@example.net", ["alice+box@example.test"],
                   make_message("into dovecot", to="alice@example.test").encode())
    try:
        [msg] = wait_for_messages(dovecot.maildir("alice"), 1, timeout=15)
    except AssertionError as e:
        raise AssertionError("%s\nDovecot log:\n%s" % (e, dovecot.log_text()))
    assert msg["Subject"] == "into dovecot"
    assert msg["Return-Path"] == "<sender@example.net>"  # added by Dovecot
    received = [" ".join(r.split()) for r in msg.get_all("Received")]
    assert any("by mx.example.test (tern) with ESMTP" in r and "for <alice+box@example.test>" in r
               for r in received), received
    # tern's own Maildir tree is not used in LMTP mode.
    assert not os.path.exists(t.mail_root)
    wait_until(lambda: "queue is empty" in t.queue("list").stdout, 10, what="an empty queue")


def test_recipient_unknown_to_dovecot_is_recorded_as_failed(tern_factory, dovecot):
    t = tern_factory(lmtp="unix:" + dovecot.socket)
    with smtplib.SMTP("127.0.0.1", t.ports["mx"], local_hostname="peer.example.net", timeout=15) as s:
        # bob is a tern account, so tern accepts; Dovecot does not know him.
        s.ehlo()
        s.mail("sender@example.net")
        assert s.rcpt("bob@example.test")[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        code, text = s.data(make_message("half known", to="bob@example.test").encode())
        assert code == 250, text
        qid = text.decode().split()[-1]
    [msg] = wait_for_messages(dovecot.maildir("alice"), 1, timeout=15)
    assert msg["Subject"] == "half known"
    assert not os.path.exists(dovecot.maildir("bob"))

    def bob_failed_in_log():
        lines = [line for line in t.log_text().splitlines()
                 if "event=delivery" in line and "id=" + qid in line and "to=bob@example.test" in line]
        return lines if lines else None
    lines = wait_until(bob_failed_in_log, 15, what="a delivery log line for bob")
    line = lines[-1]
    assert "status=failed" in line or "status=bounced" in line, line
    assert "5.1.1" in line or " 550" in line or "\"550" in line, line
    # The queue keeps the failed recipient (until bounces exist) or drops the
    # message; it must never stay pending for retry.
    entry = parse_queue_list(t.queue("list").stdout).get(qid)
    if entry is not None:
        bob = [r for r in entry["rcpts"] if r["to"] == "bob@example.test"]
        assert bob and bob[0]["status"] == "failed", entry
    assert len(maildir_messages(dovecot.maildir("alice"))) == 1
