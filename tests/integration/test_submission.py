"""Message submission (RFC 6409) with Python's smtplib: STARTTLS (RFC 3207),
implicit TLS (RFC 8314), SMTP AUTH (RFC 4954) with PLAIN (RFC 4616), LOGIN
and SCRAM-SHA-256 (RFC 5802, RFC 7677, client implemented here), sender
ownership checks and the refusals around them."""

import base64
import hashlib
import hmac
import os
import smtplib

import pytest

from ternlib import PASSWORDS, client_tls_context, make_message, queued_id, wait_for_messages

ALICE = "alice@example.test"


def connect_submission(server, starttls=True):
    s = smtplib.SMTP("127.0.0.1", server.ports["submission"], local_hostname="laptop.example.net", timeout=15)
    s.ehlo()
    if starttls:
        code, _ = s.starttls(context=client_tls_context())
        assert code == 220
        s.ehlo()
    return s


def send(s, sender, rcpt, subject):
    """Sends one message with explicit MAIL/RCPT/DATA; returns the DATA reply."""
    code, text = s.mail(sender)
    assert code == 250, (code, text)
    code, text = s.rcpt(rcpt)
    assert code == 250, (code, text)
    code, text = s.data(make_message(subject, sender=sender, to=rcpt).encode())
    assert code == 250, (code, text)
    return text.decode()


def received_of(msg):
    return " ".join(msg["Received"].split())


class ScramSha256Client:
    """Client side of SCRAM-SHA-256 without channel binding (RFC 5802 §3, §5)."""

    def __init__(self, user, password):
        self.user = user
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.client_first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), self.nonce)
        self.step = 0
        self.server_signature = None
        self.server_verified = False

    def __call__(self, challenge=None):
        if challenge is None:  # initial response: client-first-message
            return "n,," + self.client_first_bare
        self.step += 1
        text = challenge.decode()
        if self.step == 1:
            attrs = dict(part.split("=", 1) for part in text.split(","))
            assert attrs["r"].startswith(self.nonce), "server nonce must extend ours: " + text
            salt = base64.b64decode(attrs["s"])
            iterations = int(attrs["i"])
            assert iterations >= 4096, "RFC 7677 minimum iteration count"
            salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iterations)
            client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
            stored_key = hashlib.sha256(client_key).digest()
            server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
            without_proof = "c=%s,r=%s" % (base64.b64encode(b"n,,").decode(), attrs["r"])
            auth_message = ",".join([self.client_first_bare, text, without_proof]).encode()
            client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
            proof = bytes(a ^ b for a, b in zip(client_key, client_signature))
            self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
            return without_proof + ",p=" + base64.b64encode(proof).decode()
        if self.step == 2:
            # The server-final message travels as a last 334 (RFC 4954 §4).
            assert text.startswith("v="), "expected server-final v=..., got " + text
            self.server_verified = hmac.compare_digest(base64.b64decode(text[2:]), self.server_signature)
            assert self.server_verified, "server signature does not verify: " + text
            return ""
        raise AssertionError("unexpected extra SCRAM challenge: " + text)


def test_auth_not_offered_before_starttls_and_refused(tern):
    s = connect_submission(tern, starttls=False)
    assert s.has_extn("starttls")
    assert not s.has_extn("auth")
    code, text = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0" + ALICE.encode() + b"\0x").decode())
    assert code == 530 and text.startswith(b"5.7.0"), (code, text)
    s.starttls(context=client_tls_context())
    s.ehlo()
    assert s.has_extn("auth")
    assert set(s.esmtp_features["auth"].upper().split()) == {"SCRAM-SHA-256", "PLAIN", "LOGIN"}
    s.quit()


def test_starttls_auth_plain_and_received_header(tern):
    s = connect_submission(tern)
    code, _ = s.auth("PLAIN", lambda challenge=None: "\0%s\0%s" % (ALICE, PASSWORDS[ALICE]))
    assert code == 235
    cipher = s.sock.cipher()
    reply = send(s, ALICE, "bob@example.test", "via plain")
    s.quit()
    [msg] = wait_for_messages(tern.maildir("bob"), 1)
    r = received_of(msg)
    assert "with ESMTPSA id " + queued_id(reply) in r, r
    assert "from laptop.example.net" in r
    assert "(using %s with cipher %s" % (cipher[1], cipher[0]) in r, (cipher, r)
    assert msg["Return-Path"] == "<%s>" % ALICE


@pytest.mark.parametrize("initial_response", [True, False])
def test_starttls_auth_login(tern, initial_response):
    s = connect_submission(tern)
    s.user, s.password = "bob@example.test", PASSWORDS["bob@example.test"]
    code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=initial_response)
    assert code == 235
    send(s, "bob@example.test", ALICE, "via login")
    s.quit()
    [msg] = wait_for_messages(tern.maildir("alice"), 1)
    assert "with ESMTPSA" in received_of(msg)


def test_starttls_auth_scram_sha_256(tern):
    s = connect_submission(tern)
    client = ScramSha256Client(ALICE, PASSWORDS[ALICE])
    code, _ = s.auth("SCRAM-SHA-256", client)
    assert code == 235
    assert client.server_verified
    send(s, ALICE, "carol@example.test", "via scram")
    s.quit()
    [msg] = wait_for_messages(tern.maildir("carol"), 1)
    assert "with ESMTPSA" in received_of(msg)


def test_scram_with_wrong_password_fails(tern):
    s = connect_submission(tern)
    with pytest.raises(smtplib.SMTPAuthenticationError) as err:
        s.auth("SCRAM-SHA-256", ScramSha256Client(ALICE, "not-the-password"))
    assert err.value.smtp_code == 535
    s.close()


def test_implicit_tls_submissions(tern):
    s = smtplib.SMTP_SSL("127.0.0.1", tern.ports["submissions"], local_hostname="laptop.example.net",
                         context=client_tls_context(), timeout=15)
    s.ehlo()
    assert not s.has_extn("starttls")
    assert s.has_extn("auth")
    s.login(ALICE, PASSWORDS[ALICE])
    version = s.sock.version()
    reply = send(s, ALICE, "bob@example.test", "via submissions")
    s.quit()
    [msg] = wait_for_messages(tern.maildir("bob"), 1)
    r = received_of(msg)
    assert "with ESMTPSA id " + queued_id(reply) in r, r
    assert "(using " + version in r, r


def test_auth_refused_on_mx_listener(tern):
    s = smtplib.SMTP("127.0.0.1", tern.ports["mx"], local_hostname="peer.example.net", timeout=15)
    s.ehlo()
    s.starttls(context=client_tls_context())
    s.ehlo()
    assert not s.has_extn("auth")
    code, text = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0" + ALICE.encode() + b"\0x").decode())
    assert 500 <= code < 600, (code, text)
    s.quit()


def test_wrong_password_is_535_5_7_8(tern):
    s = connect_submission(tern)
    with pytest.raises(smtplib.SMTPAuthenticationError) as err:
        s.auth("PLAIN", lambda challenge=None: "\0%s\0wrong" % ALICE)
    assert err.value.smtp_code == 535
    assert err.value.smtp_error.startswith(b"5.7.8"), err.value.smtp_error
    # Not authenticated: MAIL still needs AUTH.
    code, text = s.mail(ALICE)
    assert code == 530 and text.startswith(b"5.7.0"), (code, text)
    s.close()


def test_sending_as_someone_else_is_553(tern):
    s = connect_submission(tern)
    s.login(ALICE, PASSWORDS[ALICE])
    code, text = s.mail("bob@example.test")
    assert code == 553 and text.startswith(b"5.7.1"), (code, text)
    code, text = s.mail("ceo@elsewhere.example")
    assert code == 553 and text.startswith(b"5.7.1"), (code, text)
    s.quit()


def test_sending_as_own_alias_works(tern):
    s = connect_submission(tern)
    s.login(ALICE, PASSWORDS[ALICE])
    send(s, "sales@example.test", "carol@example.test", "as sales")
    send(s, "alice+news@example.test", "carol@example.test", "as detail")
    s.quit()
    msgs = wait_for_messages(tern.maildir("carol"), 2)
    assert sorted(m["Return-Path"] for m in msgs) == ["<alice+news@example.test>", "<sales@example.test>"]


def test_mail_without_auth_on_submission_is_530(tern):
    s = connect_submission(tern)
    code, text = s.mail(ALICE)
    assert code == 530 and text.startswith(b"5.7.0"), (code, text)
    s.quit()
