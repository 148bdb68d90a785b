"""Hostile-client safety on raw sockets: SMTP smuggling (RFC 5321 §2.3.8,
§4.1.1.4), STARTTLS command injection (RFC 3207 §6), line and size limits
(RFC 5321 §4.5.3.1, RFC 1870), recipient, error, timeout (RFC 5321 §4.5.3.2)
and per-IP connection limits."""

import socket
import time

import pytest

from ternlib import RawSmtp, all_maildir_files, client_tls_context, wait_for_messages, wait_until

FAKE_ENDS = {
    "lf-dot-crlf": b"\n.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "lf-dot-lf": b"\n.\n",
    "cr-dot-crlf": b"\r.\r\n",
}


def greet(t, role="mx", ehlo=True):
    c = RawSmtp(t.addr(role))
    code, _ = c.reply()
    assert code == 220
    if ehlo:
        c.ehlo()
    return c


def send_simple(c, rcpt="alice@example.test", subject="ok"):
    assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: %s\r\n\r\nbody\r\n.\r\n" % subject)
    return c.reply_text()


def files_containing(root, needle):
    hits = []
    for path in all_maildir_files(root):
        with open(path, "rb") as f:
            if needle in f.read():
                hits.append(path)
    return hits


@pytest.mark.parametrize("fake_end", list(FAKE_ENDS.values()), ids=list(FAKE_ENDS.keys()))
def test_smtp_smuggling_is_refused(tern, fake_end):
    c = greet(tern)
    assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    payload = (b"From: sender@example.net\r\nSubject: carrier\r\n\r\nfirst part" + fake_end +
               b"MAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
               b"From: admin@example.test\r\nSubject: SMUGGLED\r\n\r\nsmuggled body\r\n.\r\n")
    c.send(payload)
    # One reply only, for the whole thing, and it refuses the bare line ending.
    assert c.reply_text().startswith("550 5.6.11"), "smuggling payload was not refused"
    # The next reply must be for our NOOP: nothing was executed from the body.
    assert c.cmd("NOOP")[0] == 250
    assert c.buf == b""
    # The session still works and delivers a legitimate message...
    assert send_simple(c, subject="after smuggling attempt").startswith("250 2.0.0")
    c.cmd("QUIT")
    c.close()
    wait_for_messages(tern.maildir("alice"), 1)
    # ...and nothing smuggled (or carrying the smuggled text) was delivered.
    assert files_containing(tern.mail_root, b"SMUGGLED") == []
    assert files_containing(tern.mail_root, b"carrier") == []
    wait_until(lambda: "queue is empty" in tern.queue("list").stdout, 10, what="an empty queue")
    assert len(all_maildir_files(tern.mail_root)) == 1


def test_bare_lf_in_command_line_is_500(tern):
    c = greet(tern)
    c.send(b"MAIL FROM:<sender@example.net>\n")
    assert c.reply_text().startswith("500 5.5.2")
    # The MAIL was not executed: RCPT needs a MAIL first.
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 503
    c.send(b"NOOP\rRSET\r\n")
    assert c.reply_text().startswith("500 5.5.2")
    c.close()


def test_starttls_command_injection_is_discarded(tern):
    c = greet(tern)
    # Pipelined in one segment: the RSET arrived in plaintext and must be dropped.
    c.send(b"STARTTLS\r\nRSET\r\n")
    code, _ = c.reply()
    assert code == 220
    assert c.buf == b"", "server answered the injected command before TLS: %r" % c.buf
    c.sock = client_tls_context().wrap_socket(c.sock)
    code, lines = c.cmd("EHLO client.example.net")
    assert code == 250
    assert lines[0].startswith("mx.example.test"), "first reply after TLS is not our EHLO's: %r" % lines
    assert "PIPELINING" in lines
    assert c.cmd("NOOP")[0] == 250
    # No stray reply for the injected RSET is waiting anywhere.
    c.sock.settimeout(0.3)
    with pytest.raises((socket.timeout, TimeoutError)):
        c._fill()
    c.close()


def test_oversized_command_line_is_500(tern):
    c = greet(tern)
    c.send("NOOP " + "x" * 5000 + "\r\n")
    assert c.reply_text().startswith("500 5.5.2")
    assert c.cmd("NOOP")[0] == 250
    # A line at the limit (2048 octets with CRLF) is fine.
    code, _ = c.cmd("NOOP " + "y" * (2048 - 7))
    assert code == 250
    c.close()


def test_size_limit(tern_factory):
    t = tern_factory(limits={"max_message_size": 10000})
    c = greet(t)
    # RFC 1870 §6: declared size over the limit is refused at MAIL.
    code, lines = c.cmd("MAIL FROM:<sender@example.net> SIZE=20000")
    assert code == 552 and lines[0].startswith("5.3.4"), (code, lines)
    # Undeclared but too big: refused after the final dot.
    assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: big\r\n\r\n" + (b"z" * 70 + b"\r\n") * 300 + b".\r\n")
    assert c.reply_text().startswith("552 5.3.4")
    assert send_simple(c, subject="small").startswith("250")
    c.close()
    [msg] = wait_for_messages(t.maildir("alice"), 1)
    assert msg["Subject"] == "small"


def test_too_many_recipients_is_452(tern_factory):
    t = tern_factory(limits={"max_recipients": 3})
    c = greet(t)
    assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
    for user in ("alice", "bob", "carol"):
        assert c.cmd("RCPT TO:<%s@example.test>" % user)[0] == 250
    code, lines = c.cmd("RCPT TO:<alice+more@example.test>")
    assert code == 452 and lines[0].startswith("4.5.3"), (code, lines)
    c.close()


def test_too_many_errors_closes_with_421(tern_factory):
    t = tern_factory(limits={"max_errors": 3})
    c = greet(t)
    assert c.cmd("BOGUS1")[0] == 500
    assert c.cmd("BOGUS2")[0] == 500
    c.send("BOGUS3\r\n")
    assert c.reply()[0] == 500
    assert c.reply_text().startswith("421 ")
    assert c.closed_by_peer()
    c.close()


def test_command_timeout_closes_with_421(tern_factory):
    t = tern_factory(limits={"timeout_command": 2})
    c = greet(t)
    started = time.monotonic()
    c.sock.settimeout(10)
    text = c.reply_text()
    elapsed = time.monotonic() - started
    assert text.startswith("421 4.4.2"), text
    assert 1.5 <= elapsed < 8, elapsed
    assert c.closed_by_peer()
    c.close()


def test_command_timeout_over_tls_sends_421_through_tls(tern_factory):
    t = tern_factory(limits={"timeout_command": 2})
    c = greet(t)
    c.starttls()
    c.ehlo()
    c.sock.settimeout(10)
    text = c.reply_text()
    assert text.startswith("421 4.4.2"), text
    assert c.closed_by_peer()
    c.close()


def test_connections_per_ip_limit(tern_factory):
    t = tern_factory(limits={"max_connections_per_ip": 3})
    held = [greet(t, ehlo=False) for _ in range(3)]
    fourth = RawSmtp(t.addr())
    text = fourth.reply_text()
    assert text.startswith("421 "), text
    assert fourth.closed_by_peer()
    fourth.close()
    # Releasing one slot lets a new client in.
    held.pop().cmd("QUIT")

    def admitted():
        c = RawSmtp(t.addr())
        try:
            return c.reply()[0] == 220
        finally:
            c.close()
    wait_until(admitted, 5, interval=0.1, what="a slot after QUIT")
    for c in held:
        c.close()
