"""Remote delivery end to end (issue 4): the real tern relays mail from a
trusted network to scripted aiosmtpd peers on 127.0.0.x:25, found through MX
and A records served by a private dnsmasq. Checks direct MX delivery (one
transaction per domain, fallthrough past an MX host that refuses
connections), per-recipient outcomes (250 delivered, 450 stays queued, 550
fails), what the peer receives (envelope, Received kept, Return-Path
stripped), routes: a smarthost ([[transport]] kind smtp) and a fail
transport, and the [delivery] data_done_timeout (RFC 5321 §4.5.3.2.6)
against a peer that stalls after the final dot."""
import smtplib
import time

import pytest

from dnsserver import DnsServer
from peers import SmtpPeer
from ternlib import free_port, make_message, queued_id, wait_until

SENDER = "sender@example.net"


@pytest.fixture
def dns(tmp_path):
    server = DnsServer(str(tmp_path), zones=("test",))
    server.mx("remote.test", "mx.remote.test", 10).host("mx.remote.test", "127.0.0.2")
    # far.test: the preferred MX refuses connections (nothing on 127.0.0.4:25).
    server.mx("far.test", "mx1.far.test", 10).host("mx1.far.test", "127.0.0.4")
    server.mx("far.test", "mx2.far.test", 20).host("mx2.far.test", "127.0.0.2")
    server.start()
    yield server
    server.stop()


def submit(t, rcpts, content):
    """Relays `content` through tern's MX listener; returns the queue id."""
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


def test_direct_delivery_per_recipient_outcomes(tern_factory, dns):
    with SmtpPeer("127.0.0.2") as peer:
        t = tern_factory(dns=[dns.address], trusted_networks=["127.0.0.0/8"])
        content = "Return-Path: <forged@example.net>\r\n" + make_message("remote one", sender=SENDER,
                                                                          to="ok@remote.test")
        qid = submit(t, ["ok@remote.test", "defer@remote.test", "reject@remote.test", "other@remote.test",
                         "far@far.test"], content)
        assert qid
        wait_until(lambda: len(peer.transactions) >= 2, 15, what="two transactions at the peer")
        by_rcpts = {tuple(sorted(rcpts)): (frm, data) for frm, rcpts, data in peer.transactions}
        assert set(by_rcpts) == {("ok@remote.test", "other@remote.test"), ("far@far.test",)}
        frm, data = by_rcpts[("ok@remote.test", "other@remote.test")]
        assert frm == SENDER
        header = data.split(b"\r\n\r\n", 1)[0].decode()
        assert "Return-Path" not in header
        assert "\r\nReceived: from client.example.net" in header  # below our Authentication-Results
        assert "Subject: remote one" in header

        # 450: still queued (pending, one attempt); 550: failed; 250: delivered.
        def states():
            q = t.queue_list().get(qid)
            if not q:
                return None
            s = {r["to"]: (r["status"], r["attempts"]) for r in q["rcpts"]}
            return s if s.get("defer@remote.test", ("", 0))[1] >= 1 else None

        s = wait_until(states, 10, what="the deferred recipient recorded")
        assert s["defer@remote.test"] == ("pending", 1)
        assert s["reject@remote.test"][0] == "failed"
        assert s["ok@remote.test"][0] == "delivered"
        assert s["far@far.test"][0] == "delivered"
        log = t.log_since_start()
        assert "relay=mx2.far.test[127.0.0.2]:25" in log
        assert "status=bounced" in log and "550 5.1.1" in log


def test_smarthost_and_fail_transports(tern_factory, dns):
    routes = "\n".join([
        "[[transport]]", 'name = "hub"', 'kind = "smtp"', 'host = "127.0.0.3:25"', "",
        "[[transport]]", 'name = "deny"', 'kind = "fail"', 'message = "5.7.1 relaying to this domain is not allowed"',
        "",
        "[[route]]", 'to_domain = ["hub.test", ".hub.test"]', 'transport = "hub"', "",
        "[[route]]", 'to_domain = ["denied.test"]', 'transport = "deny"', "",
    ])
    with SmtpPeer("127.0.0.3") as hub:
        t = tern_factory(dns=[dns.address], trusted_networks=["127.0.0.0/8"], extra_config=routes)
        qid = submit(t, ["a@hub.test", "b@sub.hub.test", "c@denied.test"],
                     make_message("via hub", sender=SENDER, to="a@hub.test"))
        wait_until(lambda: hub.transactions, 15, what="a transaction at the smarthost")
        frm, rcpts, data = hub.transactions[0]
        assert frm == SENDER and sorted(rcpts) == ["a@hub.test", "b@sub.hub.test"]
        assert b"Subject: via hub" in data
        wait_until(lambda: qid not in t.queue_list(), 10, what="the message to leave the queue")
        log = t.log_since_start()
        assert "transport=deny" in log and "550 5.7.1 relaying to this domain is not allowed" in log
        assert "transport=hub" in log and "relay=127.0.0.3[127.0.0.3]:25" in log


def test_data_done_timeout_defers_recipient(tern_factory):
    # The smarthost takes the content, then says nothing for 8 s; tern waits
    # data_done_timeout = "2s" for the reply to the final dot, gives up and
    # keeps the recipient queued with the timeout as its last reply.
    with SmtpPeer("127.0.0.1", free_port(), data_delay=8) as slow:
        routes = "\n".join([
            "[[transport]]", 'name = "slow"', 'kind = "smtp"', 'host = "127.0.0.1:%d"' % slow.controller.port, "",
            "[[route]]", 'transport = "slow"', "",
        ])
        t = tern_factory(trusted_networks=["127.0.0.0/8"], extra_config=routes,
                         delivery={"data_done_timeout": '"2s"', "command_timeout": 30})
        started = time.monotonic()
        qid = submit(t, ["late@slow.test"], make_message("stalled after dot", sender=SENDER, to="late@slow.test"))

        def deferred():
            q = t.queue_list().get(qid)
            r = q and q["rcpts"][0]
            return r if r and r["attempts"] >= 1 else None

        r = wait_until(deferred, 15, what="the attempt recorded")
        elapsed = time.monotonic() - started
        assert r["status"] == "pending", r
        assert 'last="451 4.4.2 no reply to end of data' in r["line"], r["line"]
        assert "timed out waiting for server reply" in r["line"], r["line"]
        # Given up after about 2 s, long before the peer's 8 s were over.
        assert elapsed < 7, elapsed
        assert slow.transactions == []
        log = t.log_since_start()
        assert "transport=slow" in log and "status=deferred" in log
        assert qid in t.queue_list()
