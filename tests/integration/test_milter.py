"""Milters through the real server (issue 5 item 5): tern's [[milter]] chain
talks to real libmilter-based milters during the SMTP dialogue.

- tests/integration/milters/policy_milter.py (python3-milter) decides by the
  recipient's local part: it rejects and tempfails recipients, discards,
  adds headers, redirects (delete + add recipient), changes the sender,
  rewrites the Subject and replaces the body, and quarantines. Each test
  checks the SMTP reply and what reached the Maildir or the queue.
- OpenDKIM (Debian package) as a signing milter: the delivered message
  carries its DKIM-Signature, which dkimpy verifies against the key.
- A milter that is down: on_failure = tempfail answers 451 4.7.1, accept
  goes on without it.
"""
import os
import smtplib
import stat
import subprocess
import time

import pytest

from ternlib import PASSWORDS, client_tls_context, maildir_files, read_message, wait_for_messages, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY_MILTER = os.path.join(HERE, "milters", "policy_milter.py")

ALIASES = """\
reject1: alice
tempfail1: alice
discard1: alice
addheader1: alice
redirect1: bob
archive: carol
chgfrom1: alice
rewrite1: alice
quarantine1: alice
"""


def wait_for_socket(path, proc, what):
    def ready():
        if proc.poll() is not None:
            raise AssertionError("%s exited at start: %s" % (what, proc.stdout.read() if proc.stdout else ""))
        return os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode)
    wait_until(ready, timeout=15, what="%s socket %s" % (what, path))


@pytest.fixture
def policy_milter(tmp_path):
    if subprocess.run(["/usr/bin/python3", "-c", "import Milter"], capture_output=True).returncode != 0:
        pytest.fail("python3-milter is not installed (see the Makefile's PACKAGES)")
    sock = str(tmp_path / "policy-milter.sock")
    proc = subprocess.Popen(["/usr/bin/python3", POLICY_MILTER, sock], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_socket(sock, proc, "policy_milter.py")
        yield "unix:" + sock
    finally:
        proc.kill()
        proc.wait()


def milter_config(address, on_failure=None):
    lines = ["[[milter]]", 'address = "%s"' % address, "reply_timeout = 10", "connect_timeout = 5"]
    if on_failure:
        lines.append('on_failure = "%s"' % on_failure)
    return "\n".join(lines) + "\n"


def message(subject, to, sender="sender@example.net", body="The original body.\r\n"):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@test>\r\n\r\n%s" % (sender, to, subject, subject.replace(" ", "."), body)).encode()


def send(t, rcpt, subject, sender="sender@example.net"):
    """One transaction on the MX port; returns (stage, code, text)."""
    with smtplib.SMTP("127.0.0.1", t.ports["mx"], local_hostname="client.example.net", timeout=30) as s:
        s.ehlo("client.example.net")
        code, text = s.mail(sender)
        if code != 250:
            return "mail", code, text.decode()
        code, text = s.rcpt(rcpt)
        if code != 250:
            return "rcpt", code, text.decode()
        code, text = s.data(message(subject, rcpt, sender))
        return ("data" if code != 250 else "ok"), code, text.decode()


def test_python_milter_verdicts_and_modifications(tern_factory, policy_milter):
    t = tern_factory(aliases=ALIASES, extra_config=milter_config(policy_milter))

    # Recipient refusals apply to that recipient, with the milter's own reply.
    assert send(t, "reject1@example.test", "refused") == ("rcpt", 550, "5.7.1 <reject1@example.test>: rejected by test milter")
    stage, code, text = send(t, "tempfail1@example.test", "tempfailed")
    assert (stage, code) == ("rcpt", 451) and text.startswith("4.7.1"), text

    # Discard at end of message: 250 for the client, nothing queued or delivered.
    stage, code, text = send(t, "discard1@example.test", "discarded")
    assert (stage, code) == ("ok", 250) and "discarded" in text, text

    # Added headers; the macros and framing the milter saw.
    stage, code, text = send(t, "addheader1@example.test", "with headers")
    assert (stage, code) == ("ok", 250), text
    queue_id = text.split()[-1]
    [msg] = wait_for_messages(t.maildir("alice"), 1)
    assert msg["Subject"] == "with headers"
    assert msg["X-Test-Milter"] == "seen <addheader1@example.test>"
    seen = msg["X-Milter-Seen"]
    assert "j=mx.example.test" in seen and "client_addr=127.0.0.1" in seen, seen
    assert "mail_addr=sender@example.net" in seen, seen
    # Our Received field and the five of the message; the body as sent.
    assert "headers=6" in seen and "body=%d" % len("The original body.\r\n") in seen, seen
    # The id the milter saw is the id of the queued message, and our
    # Received field names the id the message was finally queued under.
    milter_id = seen.split("i=")[1].split(";")[0]
    assert milter_id, seen
    assert queue_id in msg["Received"].replace("\r\n", " ").replace("\n", " "), (queue_id, msg["Received"])

    # Redirect: the milter deletes bob's alias address and adds archive (carol).
    assert send(t, "redirect1@example.test", "redirected")[:2] == ("ok", 250)
    [redirected] = wait_for_messages(t.maildir("carol"), 1)
    assert redirected["Subject"] == "redirected"
    assert maildir_files(t.maildir("bob")) == []

    # Envelope sender change shows in Return-Path.
    assert send(t, "chgfrom1@example.test", "new sender")[:2] == ("ok", 250)
    # Header change and body replacement.
    assert send(t, "rewrite1@example.test", "rewritten")[:2] == ("ok", 250)
    msgs = wait_for_messages(t.maildir("alice"), 3)
    by_subject = {m["Subject"]: m for m in msgs}
    assert by_subject["new sender"]["Return-Path"] == "<bounces@example.test>"
    rewritten = by_subject["[tagged] rewritten"]
    assert rewritten.get_payload() == "replaced by the milter\n" or \
        rewritten.get_payload().replace("\r\n", "\n") == "replaced by the milter\n", rewritten.get_payload()

    # Quarantine: accepted, then held in the queue, not delivered.
    stage, code, text = send(t, "quarantine1@example.test", "held")
    assert (stage, code) == ("ok", 250), text
    held_id = text.split()[-1]
    wait_until(lambda: held_id in t.queue_list(), what="quarantined message in the queue")
    assert t.queue_list()[held_id]["held"], t.queue_list()
    time.sleep(0.5)
    assert "held" not in {m["Subject"] for m in wait_for_messages(t.maildir("alice"), 3)}
    # The reason is kept with the message; an administrator releases it.
    assert "held for review" in t.queue("show", held_id).stdout
    t.queue("release", held_id)
    released = wait_for_messages(t.maildir("alice"), 4)
    assert "held" in {m["Subject"] for m in released}
    assert "quarantined" in t.log_since_start()
    assert "discarded" in t.log_since_start()


def test_policy_explain_asks_milters_only_when_told(tern_factory, policy_milter, tmp_path):
    """`tern policy explain` lists the milters; with --milters yes it runs the
    transaction through them and shows their verdicts and changes."""
    t = tern_factory(aliases=ALIASES, extra_config=milter_config(policy_milter))
    base = ["policy", "explain", "--ip", "127.0.0.1", "--helo", "client.outside.test",
            "--mail-from", "sender@outside.test"]
    out = t.run_cli(base + ["--rcpt", "reject1@example.test"]).stdout
    assert "milter=not consulted" in out and policy_milter in out, out
    assert "final: (end of data not evaluated" in out, out

    out = t.run_cli(base + ["--rcpt", "reject1@example.test", "--milters", "yes"]).stdout
    assert "milter connect" in out and "milter mail" in out, out
    assert out.rstrip().endswith("final: 550 5.7.1 rejected by test milter"), out

    eml = tmp_path / "explain.eml"
    eml.write_bytes(message("explained", "redirect1@example.test", sender="sender@outside.test"))
    out = t.run_cli(base + ["--rcpt", "redirect1@example.test", "--milters", "yes", "--message", str(eml)]).stdout
    assert "milter_change=content" in out, out  # X-Milter-Seen added
    assert "milter_change=delete recipient  (<redirect1@example.test>)" in out, out
    assert "milter_change=add recipient  (<archive@example.test>)" in out, out
    assert out.rstrip().endswith("final: 250 2.0.0 accepted"), out
    # Explaining sends and queues nothing.
    assert t.queue_list() == {} and "event=queued" not in t.log_since_start()


def test_milter_down_tempfails_or_is_skipped(tern_factory, tmp_path):
    missing = "unix:" + str(tmp_path / "no-such-milter.sock")
    t = tern_factory(name="tempfail", extra_config=milter_config(missing))
    stage, code, text = send(t, "alice@example.test", "milter down")
    assert (stage, code) == ("mail", 451) and text.startswith("4.7.1"), text
    assert "event=milter_failed" in t.log_since_start()
    assert t.queue_list() == {}

    t2 = tern_factory(name="accept", extra_config=milter_config(missing, on_failure="accept"))
    assert send(t2, "alice@example.test", "milter down but accepted")[:2] == ("ok", 250)
    [msg] = wait_for_messages(t2.maildir("alice"), 1)
    assert msg["Subject"] == "milter down but accepted"

    t3 = tern_factory(name="reject", extra_config=milter_config(missing, on_failure="reject"))
    stage, code, text = send(t3, "alice@example.test", "milter down, rejected")
    assert (stage, code) == ("mail", 550) and text.startswith("5.7.1"), text


VERIFY = """\
import sys, dkim
key = open(sys.argv[2]).read().strip()
def dns(name, timeout=5):
    assert name == b's1._domainkey.example.test.', name
    return ('v=DKIM1; k=rsa; p=' + key).encode()
data = open(sys.argv[1], 'rb').read()
sys.exit(0 if dkim.verify(data, dnsfunc=dns) else 1)
"""


@pytest.mark.parametrize("origin", ["trusted-network", "authenticated"])
def test_opendkim_signing_milter(tern_factory, world_readable_tmp, origin):
    """OpenDKIM signs mail from its InternalHosts (here 127.0.0.1, tern's
    trusted network) and, with InternalHosts elsewhere, mail whose MAIL FROM
    came with the {auth_authen} macro of an AUTH login on the submission port."""
    if not os.access("/usr/sbin/opendkim", os.X_OK):
        pytest.fail("opendkim is not installed (see the Makefile's PACKAGES)")
    d = world_readable_tmp
    key = os.path.join(d, "s1.private")
    subprocess.run("openssl genrsa -out %s 2048 2>/dev/null && openssl rsa -in %s -pubout -outform DER "
                   "2>/dev/null | base64 -w0 > %s/s1.public" % (key, key, d), shell=True, check=True)
    sock = os.path.join(d, "opendkim.sock")
    conf = os.path.join(d, "opendkim.conf")
    internal = "127.0.0.1" if origin == "trusted-network" else "192.0.2.99"
    with open(conf, "w") as f:
        f.write("Mode s\nDomain example.test\nSelector s1\nKeyFile %s\nSocket local:%s\n"
                "Canonicalization relaxed/relaxed\nSyslog no\nBackground no\nRequireSafeKeys no\n"
                "InternalHosts %s\nPidFile %s/opendkim.pid\nUserID root\n" % (key, sock, internal, d))
    proc = subprocess.Popen(["/usr/sbin/opendkim", "-f", "-x", conf], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_socket(sock, proc, "opendkim")
        if origin == "trusted-network":
            t = tern_factory(trusted_networks=["127.0.0.0/8"], extra_config=milter_config("unix:" + sock))
            # bob writes from the trusted network (InternalHosts): OpenDKIM signs.
            stage, code, text = send(t, "alice@example.test", "signed by opendkim", sender="bob@example.test")
            assert (stage, code) == ("ok", 250), text
            queue_id = text.split()[-1]
        else:
            t = tern_factory(extra_config=milter_config("unix:" + sock))
            # Neither internal nor authenticated: OpenDKIM leaves it unsigned.
            stage, code, text = send(t, "alice@example.test", "not signed", sender="bob@example.test")
            assert (stage, code) == ("ok", 250), text
            [unsigned] = wait_for_messages(t.maildir("alice"), 1)
            assert unsigned["Subject"] == "not signed" and unsigned["DKIM-Signature"] is None
            for p in maildir_files(t.maildir("alice")):
                os.unlink(p)
            with smtplib.SMTP("127.0.0.1", t.ports["submission"], local_hostname="laptop.example.net",
                              timeout=30) as s:
                s.ehlo()
                s.starttls(context=client_tls_context())
                s.ehlo()
                s.login("bob@example.test", PASSWORDS["bob@example.test"])
                s.sendmail("bob@example.test", ["alice@example.test"],
                           message("signed by opendkim", "alice@example.test", "bob@example.test"))
        [path] = wait_until(lambda: maildir_files(t.maildir("alice")) or None, what="delivery")
        with open(path, "rb") as f:
            delivered = f.read()
        msg = read_message(path)
        if origin == "trusted-network":
            # The signature was inserted above our Received field, which
            # still names the id the message was queued under.
            assert queue_id in " ".join(msg["Received"].split()), (queue_id, msg["Received"])
        sigs = [" ".join(v.split()) for v in msg.get_all("DKIM-Signature", [])]
        assert any("d=example.test" in v and "s=s1" in v for v in sigs), (sigs, delivered.decode())
        verify = os.path.join(d, "verify.py")
        with open(verify, "w") as f:
            f.write(VERIFY)
        public = os.path.join(d, "s1.public")
        assert subprocess.run(["/usr/bin/python3", verify, path, public]).returncode == 0, delivered.decode()
        # The check has teeth: a changed body does not verify.
        tampered = os.path.join(d, "tampered.eml")
        with open(tampered, "wb") as f:
            f.write(delivered + b"tampered\r\n")
        assert subprocess.run(["/usr/bin/python3", verify, tampered, public],
                              capture_output=True).returncode != 0
    finally:
        proc.kill()
        proc.wait()
