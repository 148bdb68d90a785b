"""tern's outbound transports against real next hops (issue 4): a private
Postfix as the `smtp` smarthost, the same Postfix as a `submission` server
(STARTTLS required, SASL AUTH checked by a private Dovecot), Debian's
`microsocks` as the `socks5` proxy in front of direct MX delivery, and a
route that hands a message to the smarthost once direct delivery has been
deferred `minimum_attempts` times. Postfix relays everything on to an
aiosmtpd sink, so each test reads the envelope and the bytes that arrived,
plus Postfix's and tern's logs. The submission Postfix presents a
certificate from a private CA made here with openssl (for 127.0.0.1 and
smarthost.test): tern's tls_verify/tls_ca_file must accept it with that CA
and refuse it, before AUTH, without it, with another CA or under another
name. `submissions` (implicit TLS) is tested against Postfix in wrapper mode."""

import os
import shutil
import smtplib
import socket
import subprocess

import pytest

from dnsserver import DnsServer
from peers import RecordingHandler, SmtpPeer
from postfix_peer import DOVECOT, POSTFIX, DovecotAuth, RelayingPostfix
from ternlib import TERN_BIN, free_port, make_message, queued_id, stop_process, wait_until

SENDER = "sender@example.net"
MICROSOCKS = "/usr/bin/microsocks"
RELAY_USER = "tern-relay@example.net"
RELAY_PASSWORD = "relay-pass-7"
# Loopback addresses of the MX peers, away from the ones other tests use.
SOCKS_TARGET_IP = "127.0.0.41"
GREYLIST_IP = "127.0.0.42"
PROXY_OUTGOING_IP = "127.0.0.43"  # microsocks binds its outgoing connections here


def skip_unless_installed(*paths):
    for path in paths:
        if shutil.which(path) is None and not os.access(path, os.X_OK):
            pytest.skip("%s is not installed (see the Makefile's PACKAGES)" % path)


def toml_table(table, **keys):
    """One [[table]] entry (transport or route) as TOML text."""
    lines = ["[[%s]]" % table]
    for key, value in keys.items():
        if isinstance(value, int):
            lines.append("%s = %d" % (key, value))
        elif isinstance(value, list):
            lines.append("%s = [%s]" % (key, ", ".join('"%s"' % v for v in value)))
        else:
            lines.append('%s = "%s"' % (key, value))
    return "\n".join(lines) + "\n"


def submit(t, rcpts, content):
    """Relays `content` through tern's MX listener (trusted network); returns the queue id."""
    with smtplib.SMTP(*t.addr("mx"), local_hostname="client.example.net", timeout=10) as s:
        s.ehlo()
        code, _ = s.mail(SENDER)
        assert code == 250
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, text
        code, text = s.data(content.encode())
        assert code == 250, text
        return queued_id(text.decode())


def header_section(data):
    return data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")


def received_headers(data):
    """The Received fields of raw message bytes, unfolded, newest first."""
    out = []
    for line in header_section(data).split("\r\n"):
        if line[:1] in (" ", "\t") and out and out[-1] is not None:
            out[-1] += " " + line.strip()
        elif line.lower().startswith("received:"):
            out.append(line.split(":", 1)[1].strip())
        else:
            out.append(None)
    return [" ".join(r.split()) for r in out if r is not None]


def wait_for_sink(sink, what, *logs):
    """Waits for a transaction at `sink`; on timeout the failure shows the
    logs of the servers in between, given as (name, function reading it)."""
    try:
        wait_until(lambda: sink.transactions, 20, what=what)
    except AssertionError as e:
        raise AssertionError(str(e) + "".join("\n%s log:\n%s" % (name, read()) for name, read in logs))


def recipient_state(t, qid, address):
    q = t.queue_list().get(qid)
    if not q:
        return None
    for r in q["rcpts"]:
        if r["to"] == address:
            return r
    return None


OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:smarthost.test
authorityKeyIdentifier = keyid
"""


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


def make_ca(directory, name):
    """A private CA (EC P-256): returns (certificate path, key path)."""
    cnf = os.path.join(directory, "openssl.cnf")
    with open(cnf, "w") as f:
        f.write(OPENSSL_CNF)
    cert, key = os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".key")
    openssl("req", "-x509", "-config", cnf, "-extensions", "ca_ext", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=tern test " + name,
            "-keyout", key, "-out", cert)
    return cert, key


def issue_server_cert(directory, ca):
    """A server certificate signed by `ca` for IP 127.0.0.1 and DNS smarthost.test."""
    cnf = os.path.join(directory, "openssl.cnf")
    cert, key, csr = (os.path.join(directory, "server" + ext) for ext in (".pem", ".key", ".csr"))
    openssl("req", "-new", "-config", cnf, "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=smarthost.test", "-keyout", key, "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-days", "2",
            "-extfile", cnf, "-extensions", "server_ext", "-out", cert)
    return cert, key


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory):
    """{"ca": the CA that issued the server certificate, "other_ca": a CA
    that did not, "cert"/"key": the server's}."""
    d = str(tmp_path_factory.mktemp("private-ca"))
    ca = make_ca(d, "ca")
    other = make_ca(d, "other-ca")
    cert, key = issue_server_cert(d, ca)
    for path in (d, ca[0], other[0], cert):
        os.chmod(path, 0o755 if os.path.isdir(path) else 0o644)  # tern and Postfix read them
    return {"ca": ca[0], "other_ca": other[0], "cert": cert, "key": key}


def password_file(directory, password):
    path = os.path.join(directory, "transport-password")
    with open(path, "w") as f:
        f.write(password + "\n")
    os.chmod(path, 0o600)
    return path


# -- fixtures ------------------------------------------------------------------

@pytest.fixture
def sink():
    """The final destination behind Postfix: an aiosmtpd recorder on a free port."""
    with SmtpPeer("127.0.0.1", free_port()) as peer:
        yield peer


@pytest.fixture
def postfix_factory(world_readable_tmp):
    skip_unless_installed(POSTFIX, "postconf")
    instances = []

    def make(name, relay_to, **options):
        p = RelayingPostfix(os.path.join(world_readable_tmp, name), "[127.0.0.1]:%d" % relay_to, **options)
        instances.append(p)
        return p.start()
    yield make
    for p in instances:
        p.stop()


@pytest.fixture
def dovecot_auth(world_readable_tmp):
    skip_unless_installed(DOVECOT)
    d = DovecotAuth(os.path.join(world_readable_tmp, "dovecot"), {RELAY_USER: RELAY_PASSWORD})
    d.start()
    yield d
    d.stop()


@pytest.fixture
def dns(tmp_path):
    server = DnsServer(str(tmp_path), zones=("test",))
    server.mx("socks.test", "mx.socks.test", 10).host("mx.socks.test", SOCKS_TARGET_IP)
    server.mx("greylist.test", "mx.greylist.test", 10).host("mx.greylist.test", GREYLIST_IP)
    server.start()
    yield server
    server.stop()


class PeerAddressHandler(RecordingHandler):
    """Records, with each transaction, the address the connection came from."""

    def __init__(self):
        super().__init__()
        self.peers = []

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.peers.append(session.peer[0])
        return await super().handle_DATA(server, session, envelope)


class GreylistHandler(RecordingHandler):
    """Answers every RCPT with 451 and counts the attempts."""

    def __init__(self):
        super().__init__()
        self.rcpt_attempts = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            self.rcpt_attempts += 1
        return "451 4.7.1 greylisted, please try again later"


def scripted_peer(host, handler):
    """An SmtpPeer on host:25 answering with `handler` instead of the default recorder."""
    peer = SmtpPeer(host)
    peer.controller.handler = peer.handler = handler  # read when the controller starts
    return peer


class Microsocks:
    """Debian's microsocks on 127.0.0.1:`port`, its outgoing connections bound
    to `outgoing_ip` (-b) so that the far end can tell proxied connections
    apart; with `user`, RFC 1929 username/password authentication is required."""

    def __init__(self, root, port, outgoing_ip, user=None, password=None):
        self.port = port
        self.log = os.path.join(root, "microsocks-%d.log" % port)
        self.cmd = [MICROSOCKS, "-i", "127.0.0.1", "-p", str(port), "-b", outgoing_ip]
        if user:
            self.cmd += ["-u", user, "-P", password]
        self.proc = None

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("microsocks exited: %s" % open(self.log).read())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False
        wait_until(listening, 5, what="microsocks on port %d" % self.port)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, 5)
        self.proc = None


# -- smtp: Postfix as smarthost ----------------------------------------------------

def test_smtp_transport_relays_through_postfix_smarthost(tern_factory, postfix_factory, sink):
    pf = postfix_factory("smarthost", sink.controller.port)
    config = (toml_table("transport", name="hub", kind="smtp", host="127.0.0.1:%d" % pf.port) +
              toml_table("route", transport="hub"))
    t = tern_factory(trusted_networks=["127.0.0.0/8"], extra_config=config)
    content = "Return-Path: <forged@example.net>\r\n" + make_message("via postfix smarthost", sender=SENDER,
                                                                      to="first@far.example")
    qid = submit(t, ["first@far.example", "second@elsewhere.example"], content)
    wait_for_sink(sink, "the message at the sink behind Postfix", ("Postfix", pf.log_tail))
    [(mail_from, rcpts, data)] = sink.transactions
    assert mail_from == SENDER
    assert sorted(rcpts) == ["first@far.example", "second@elsewhere.example"]
    header = header_section(data)
    assert "Subject: via postfix smarthost" in header
    assert "Return-Path" not in header  # stripped by tern (RFC 5321 §4.4), not re-added by Postfix
    received = received_headers(data)
    # Newest first: Postfix's (naming tern's EHLO), then tern's (naming our client).
    assert received[0].startswith("from mx.example.test ("), received
    assert "by relay.example.net (Postfix) with ESMTP" in received[0]
    assert received[1].startswith("from client.example.net ("), received
    assert "by mx.example.test (tern) with ESMTP" in received[1]
    wait_until(lambda: qid not in t.queue_list(), 10, what="the message to leave tern's queue")
    log = t.log_since_start()
    assert "transport=hub" in log and "relay=127.0.0.1[127.0.0.1]:%d" % pf.port in log
    assert "status=sent" in log
    pf_log = pf.log_text()
    assert "from=<%s>" % SENDER in pf_log and "relay=127.0.0.1[127.0.0.1]:%d" % sink.controller.port in pf_log


# -- submission: Postfix with STARTTLS and SASL (Dovecot) -------------------------

@pytest.fixture
def submission_postfix(postfix_factory, dovecot_auth, sink, private_ca):
    return postfix_factory("submission", sink.controller.port, hostname="submit.example.net",
                           submission_auth_socket=dovecot_auth.socket, cert=private_ca["cert"],
                           key=private_ca["key"])


def submission_config(port, password_path, ca_file, kind="submission"):
    return (toml_table("transport", name="isp", kind=kind, host="127.0.0.1:%d" % port,
                       auth_user=RELAY_USER, auth_password_file=password_path, tls_ca_file=ca_file) +
            toml_table("route", transport="isp"))


def test_submission_transport_authenticates_at_postfix(tern_factory, submission_postfix, dovecot_auth, sink,
                                                       tmp_path, private_ca):
    pf = submission_postfix
    # tls_verify is on by default for submission: the certificate chains to
    # tls_ca_file and names 127.0.0.1 (the configured host).
    t = tern_factory(trusted_networks=["127.0.0.0/8"],
                     extra_config=submission_config(pf.port, password_file(str(tmp_path), RELAY_PASSWORD),
                                                    private_ca["ca"]))
    qid = submit(t, ["friend@far.example"], make_message("via submission", sender=SENDER, to="friend@far.example"))
    wait_for_sink(sink, "the message at the sink behind Postfix", ("Postfix", pf.log_tail),
                  ("Dovecot", dovecot_auth.log_text))
    [(mail_from, rcpts, data)] = sink.transactions
    assert mail_from == SENDER and rcpts == ["friend@far.example"]
    assert "Subject: via submission" in header_section(data)
    received = received_headers(data)
    # Postfix saw TLS + AUTH (ESMTPSA, RFC 3848) and names the SASL user
    # (smtpd_sasl_authenticated_header).
    assert received[0].startswith("from mx.example.test ("), received
    assert "(Authenticated sender: %s)" % RELAY_USER in received[0], received[0]
    assert "by submit.example.net (Postfix) with ESMTPSA" in received[0], received[0]
    assert "by mx.example.test (tern) with ESMTP" in received[1], received
    assert "sasl_method=PLAIN, sasl_username=%s" % RELAY_USER in pf.log_text()
    wait_until(lambda: qid not in t.queue_list(), 10, what="the message to leave tern's queue")
    log = t.log_since_start()
    assert "transport=isp" in log and "relay=127.0.0.1[127.0.0.1]:%d" % pf.port in log
    assert "tls=yes status=sent" in log


def test_submission_wrong_password_stays_queued(tern_factory, submission_postfix, dovecot_auth, sink, tmp_path,
                                                private_ca):
    pf = submission_postfix
    t = tern_factory(trusted_networks=["127.0.0.0/8"],
                     extra_config=submission_config(pf.port, password_file(str(tmp_path), "not-the-password"),
                                                    private_ca["ca"]))
    qid = submit(t, ["friend@far.example"], make_message("bad credentials", sender=SENDER, to="friend@far.example"))
    rcpt = wait_until(lambda: (lambda r: r if r and r["attempts"] >= 1 else None)(
        recipient_state(t, qid, "friend@far.example")), 20, what="the failed attempt recorded")
    # A refused AUTH is transient (4.7.8 with Postfix's 535 quoted): the
    # message waits for corrected credentials instead of bouncing.
    assert rcpt["status"] == "pending", rcpt
    assert "4.7.8" in rcpt["line"] and "535" in rcpt["line"], rcpt["line"]
    assert sink.transactions == []
    assert "authentication failed" in pf.log_text()
    assert "status=deferred" in t.log_since_start()


def test_submission_refuses_unverified_server_before_auth(tern_factory, submission_postfix, sink, tmp_path,
                                                          private_ca):
    pf = submission_postfix
    password = password_file(str(tmp_path), RELAY_PASSWORD)
    host = "127.0.0.1:%d" % pf.port

    def transport(name, **keys):
        return toml_table("transport", name=name, kind="submission", auth_user=RELAY_USER,
                          auth_password_file=password, **keys)
    config = (
        # The system store does not know the private CA.
        transport("system-store", host=host) +
        # A CA that did not issue the certificate.
        transport("other-ca", host=host, tls_ca_file=private_ca["other_ca"]) +
        # The right CA, but the certificate does not name "localhost".
        transport("other-name", host="localhost:%d" % pf.port, tls_ca_file=private_ca["ca"]) +
        # Verification switched off by the operator: delivered.
        toml_table("transport", name="unverified", kind="submission", host=host, auth_user=RELAY_USER,
                   auth_password_file=password) + "tls_verify = false\n" +
        toml_table("route", to_domain=["system.example"], transport="system-store") +
        toml_table("route", to_domain=["other-ca.example"], transport="other-ca") +
        toml_table("route", to_domain=["other-name.example"], transport="other-name") +
        toml_table("route", to_domain=["unverified.example"], transport="unverified"))
    t = tern_factory(trusted_networks=["127.0.0.0/8"], extra_config=config)
    refused = {"a@system.example": "for 127.0.0.1: unable to get local issuer certificate",
               "b@other-ca.example": "for 127.0.0.1: unable to get local issuer certificate",
               "c@other-name.example": "for localhost: hostname mismatch"}
    qid = submit(t, sorted(refused) + ["d@unverified.example"],
                 make_message("verify the smarthost", sender=SENDER, to="a@system.example"))

    def attempted():
        q = t.queue_list().get(qid)
        rcpts = {r["to"]: r for r in q["rcpts"]} if q else {}
        return rcpts if all(rcpts.get(a, {}).get("attempts", 0) >= 1 for a in refused) else None
    rcpts = wait_until(attempted, 20, what="the three refused attempts recorded")
    for address, reason in refused.items():
        r = rcpts[address]
        assert r["status"] == "pending", r
        assert 'last="451 4.7.5 TLS certificate verification failed ' + reason in r["line"], r["line"]
    assert rcpts["d@unverified.example"]["status"] == "delivered", rcpts

    # Only the unverified transport's recipient arrived; the refused
    # connections ended after STARTTLS with QUIT: no AUTH, no MAIL.
    wait_until(lambda: sink.transactions, 20, what="the tls_verify = false message at the sink")
    assert [rcpts for _, rcpts, _ in sink.transactions] == [["d@unverified.example"]]
    pf_log = pf.log_text()
    disconnects = [line for line in pf_log.splitlines() if "disconnect from" in line]
    assert len(disconnects) >= 4, pf_log
    assert len([line for line in disconnects if " auth=" not in line]) >= 3, disconnects
    assert pf_log.count("sasl_username=%s" % RELAY_USER) == 1, pf_log
    log = t.log_since_start()
    assert log.count("event=smtp_tls_verify_failed") >= 3
    assert 'server=localhost reason="hostname mismatch"' in log, log


def test_submissions_transport_implicit_tls(tern_factory, postfix_factory, dovecot_auth, sink, private_ca,
                                            tmp_path):
    pf = postfix_factory("submissions", sink.controller.port, hostname="submit.example.net",
                         submission_auth_socket=dovecot_auth.socket, cert=private_ca["cert"], key=private_ca["key"],
                         implicit_tls=True)
    t = tern_factory(trusted_networks=["127.0.0.0/8"],
                     extra_config=submission_config(pf.port, password_file(str(tmp_path), RELAY_PASSWORD),
                                                    private_ca["ca"], kind="submissions"))
    qid = submit(t, ["friend@far.example"], make_message("via submissions", sender=SENDER, to="friend@far.example"))
    wait_for_sink(sink, "the message at the sink behind Postfix", ("Postfix", pf.log_tail))
    [(mail_from, rcpts, data)] = sink.transactions
    assert mail_from == SENDER and rcpts == ["friend@far.example"]
    received = received_headers(data)
    assert "(Authenticated sender: %s)" % RELAY_USER in received[0], received[0]
    assert "by submit.example.net (Postfix) with ESMTPSA" in received[0], received[0]
    wait_until(lambda: qid not in t.queue_list(), 10, what="the message to leave tern's queue")
    log = t.log_since_start()
    assert "transport=isp" in log and "tls=yes status=sent" in log
    # TLS from the first byte: no STARTTLS command in Postfix's view.
    disconnects = [line for line in pf.log_text().splitlines() if "disconnect from" in line]
    assert disconnects and all("starttls=" not in line for line in disconnects), disconnects


# -- socks5: direct MX delivery through microsocks --------------------------------

@pytest.fixture
def microsocks(tmp_path):
    skip_unless_installed(MICROSOCKS)
    proxies = []

    def make(**options):
        p = Microsocks(str(tmp_path), free_port(), PROXY_OUTGOING_IP, **options)
        proxies.append(p)
        return p.start()
    yield make
    for p in proxies:
        p.stop()


def test_socks5_transport_connects_through_microsocks(tern_factory, dns, microsocks, tmp_path):
    proxy_user, proxy_password = "tern", "proxy-pass-9"
    proxy = microsocks(user=proxy_user, password=proxy_password)
    config = (toml_table("transport", name="proxy", kind="socks5", host="127.0.0.1:%d" % proxy.port,
                         auth_user=proxy_user, auth_password_file=password_file(str(tmp_path), proxy_password)) +
              toml_table("route", to_domain=["socks.test"], transport="proxy"))
    handler = PeerAddressHandler()
    peer = scripted_peer(SOCKS_TARGET_IP, handler)
    with peer:
        t = tern_factory(dns=[dns.address], trusted_networks=["127.0.0.0/8"], extra_config=config)
        qid = submit(t, ["user@socks.test"], make_message("through the proxy", sender=SENDER, to="user@socks.test"))
        wait_until(lambda: peer.transactions, 15, what="the message at the MX peer")
        [(mail_from, rcpts, data)] = peer.transactions
        assert mail_from == SENDER and rcpts == ["user@socks.test"]
        assert b"Subject: through the proxy" in data
        # The MX peer was reached from the proxy's outgoing address (-b), not
        # from tern's own: the connection went through microsocks, after the
        # RFC 1929 username/password exchange (microsocks was started with -u/-P).
        assert handler.peers == [PROXY_OUTGOING_IP]
        wait_until(lambda: qid not in t.queue_list(), 10, what="the message to leave tern's queue")
        log = t.log_since_start()
        assert "transport=proxy" in log and "relay=mx.socks.test[%s]:25" % SOCKS_TARGET_IP in log

        # Without the proxy the same route defers (4.4.x: no connection), and
        # tern does not fall back to connecting directly.
        proxy.stop()
        qid2 = submit(t, ["user@socks.test"], make_message("proxy down", sender=SENDER, to="user@socks.test"))
        rcpt = wait_until(lambda: (lambda r: r if r and r["attempts"] >= 1 else None)(
            recipient_state(t, qid2, "user@socks.test")), 15, what="the deferred attempt recorded")
        assert rcpt["status"] == "pending", rcpt
        assert " 4.4." in rcpt["line"], rcpt["line"]
        assert len(peer.transactions) == 1


# -- minimum_attempts: direct first, the smarthost after N deferrals ---------------

def test_route_switches_to_smarthost_after_minimum_attempts(tern_factory, dns, postfix_factory, sink):
    pf = postfix_factory("fallback", sink.controller.port)
    config = (toml_table("transport", name="fallback", kind="smtp", host="127.0.0.1:%d" % pf.port) +
              toml_table("route", to_domain=["greylist.test"], minimum_attempts=2, transport="fallback"))
    greylist = GreylistHandler()
    peer = scripted_peer(GREYLIST_IP, greylist)
    with peer:
        t = tern_factory(dns=[dns.address], trusted_networks=["127.0.0.0/8"], extra_config=config)
        qid = submit(t, ["late@greylist.test"], make_message("greylisted", sender=SENDER, to="late@greylist.test"))

        def attempts_made(n):
            r = recipient_state(t, qid, "late@greylist.test")
            return r if r and r["attempts"] >= n else None

        # Attempts 1 and 2 go direct to the MX, which answers 451 each time;
        # `tern queue retry` replaces the 5-minute retry schedule.
        rcpt = wait_until(lambda: attempts_made(1), 15, what="the first direct attempt")
        assert rcpt["status"] == "pending" and "451 4.7.1" in rcpt["line"], rcpt["line"]
        assert "scheduled for retry" in t.queue("retry", qid).stdout
        rcpt = wait_until(lambda: attempts_made(2), 15, what="the second direct attempt")
        assert rcpt["status"] == "pending" and "451 4.7.1" in rcpt["line"], rcpt["line"]
        assert greylist.rcpt_attempts == 2 and sink.transactions == []

        # From the third attempt on the route matches: the smarthost takes it.
        t.queue("retry", qid)
        wait_for_sink(sink, "the message at the sink behind the smarthost", ("Postfix", pf.log_tail))
        [(mail_from, rcpts, data)] = sink.transactions
        assert mail_from == SENDER and rcpts == ["late@greylist.test"]
        assert b"Subject: greylisted" in data
        assert greylist.rcpt_attempts == 2
        wait_until(lambda: qid not in t.queue_list(), 10, what="the message to leave tern's queue")
        log = t.log_since_start()
        assert "transport=direct" in log and "relay=mx.greylist.test[%s]:25" % GREYLIST_IP in log
        assert "transport=fallback relay=127.0.0.1[127.0.0.1]:%d tls=no status=sent attempt=3" % pf.port in log


def test_unreadable_tls_ca_file_stops_start(tern_factory, tmp_path):
    missing = os.path.join(str(tmp_path), "no-such-ca.pem")
    config = (toml_table("transport", name="hub", kind="smtp", host="127.0.0.1:2526") + "tls_verify = true\n" +
              'tls_ca_file = "%s"\n' % missing + toml_table("route", transport="hub"))
    t = tern_factory(trusted_networks=["127.0.0.0/8"], extra_config=config, start=False)
    # Like password files and DKIM keys, the file is read by `tern serve` at start.
    assert t.run_cli(["config", "check"]).returncode == 0
    res = subprocess.run([TERN_BIN, "serve", "--config", t.config_path], capture_output=True, text=True, timeout=20)
    assert res.returncode == 1, res
    assert "event=startup_failed" in res.stderr, res.stderr
    assert 'transport \\"hub\\": tls_ca_file: TLS trust anchors %s' % missing in res.stderr, res.stderr
