"""Delivery status notifications end to end (issue 4), against scripted
and real receivers: the real tern relays mail from a local user
(alice@example.test, who has a Maildir; she submits from a trusted network
on the MX listener, or with STARTTLS + AUTH on the submission port) to
aiosmtpd peers on 127.0.0.6x:25 found through MX records served by a private
dnsmasq, and to a private Postfix. The peers answer 4xx/5xx per recipient or
after the content, lack DSN, SMTPUTF8 or STARTTLS, drop the connection,
answer 421 or are slow (peers.py). Each test checks what the peers received
and which DSNs reached alice, parsed with the `email` package:
multipart/report (RFC 6522), the message/delivery-status fields (RFC 3464
§2.2, §2.3; the global form of RFC 6533), NOTIFY/ORCPT/ENVID/RET (RFC 3461),
delay warnings and expiry with a 1 s retry schedule, and that nothing is
ever sent to the null reverse-path (RFC 5321 §4.5.5)."""
import email
import email.policy
import email.utils
import re
import smtplib

import pytest

from conftest import require_binary
from dnsserver import DnsServer
from peers import SmtpPeer
from postfix_peer import POSTFIX, RelayingPostfix
from ternlib import (PASSWORDS, all_maildir_files, client_tls_context, free_port, maildir_files, maildir_messages,
                     make_message, queued_id, wait_until)

ALICE = "alice@example.test"
PLAIN_IP = "127.0.0.61"   # plain.test: no DSN, 450 "defer*", 550 "reject*", else 250
DSN_IP = "127.0.0.62"     # dsn.test: announces DSN
ASCII_IP = "127.0.0.63"   # ascii.test: no SMTPUTF8
DROP_IP = "127.0.0.64"    # drop.test: closes the connection after the content, no reply
BUSY_IP = "127.0.0.65"    # busy.test: 421 after the content
SLOW_IP = "127.0.0.66"    # slow.test: final reply after 2 s
BIG_IP = "127.0.0.67"     # big.test: 552 after the content
ONESHOT_IP = "127.0.0.68"  # oneshot.test: closes the connection after each accepted message
CLOSING_IP = "127.0.0.69"  # closing.test: 421 and close at RCPT for "shutdown*"

DOMAINS = {"plain.test": PLAIN_IP, "dsn.test": DSN_IP, "ascii.test": ASCII_IP, "drop.test": DROP_IP,
           "busy.test": BUSY_IP, "slow.test": SLOW_IP, "big.test": BIG_IP,
           "oneshot.test": ONESHOT_IP, "closing.test": CLOSING_IP}


@pytest.fixture
def dns(tmp_path):
    server = DnsServer(str(tmp_path), zones=("test",))
    for domain, ip in DOMAINS.items():
        server.mx(domain, "mx." + domain, 10).host("mx." + domain, ip)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sender_tern(tern_factory, dns):
    """A tern that relays for 127.0.0.0/8 and resolves through the test DNS;
    `queue` options (TOML values) may be given."""
    def make(queue=None):
        return tern_factory(dns=[dns.address], trusted_networks=["127.0.0.0/8"], queue=queue)
    return make


def submit(t, rcpts, content, mail_from=ALICE, mail_options=(), rcpt_options=None, smtputf8=False):
    """Relays `content` through tern's MX listener (trusted network) with
    the given MAIL parameters and per-recipient RCPT parameters; returns the
    queue id."""
    with smtplib.SMTP(*t.addr("mx"), local_hostname="client.example.test", timeout=10) as s:
        s.ehlo()
        assert s.has_extn("dsn"), "tern's MX listener does not announce DSN"
        if smtputf8:
            assert s.has_extn("smtputf8")
            s.command_encoding = "utf-8"
        code, text = s.mail(mail_from, list(mail_options))
        assert code == 250, text
        for r in rcpts:
            code, text = s.rcpt(r, list((rcpt_options or {}).get(r, ())))
            assert code == 250, text
        code, text = s.data(content.encode())
        assert code == 250, text
        qid = queued_id(text.decode())
        assert qid, text
        return qid


# -- DSN parsing --------------------------------------------------------------

def parse_fields_blocks(text):
    """message/(global-)delivery-status content: blocks of header-like fields
    separated by blank lines (RFC 3464 §2.1), each as an email.message."""
    text = text.replace("\r\n", "\n").strip("\n")
    return [email.message_from_string(block + "\n", policy=email.policy.compat32)
            for block in re.split(r"\n\s*\n", text) if block.strip()]


class Dsn:
    """One DSN as alice received it: the report's parts and status fields."""

    def __init__(self, message):
        self.message = message
        assert message.get_content_type() == "multipart/report", message.get_content_type()
        self.report_type = message.get_param("report-type")
        self.parts = message.get_payload()
        assert len(self.parts) in (2, 3), [p.get_content_type() for p in self.parts]
        assert self.parts[0].get_content_type() == "text/plain"  # RFC 6522 §3: human-readable first
        status = self.parts[1]
        assert status.get_content_type() in ("message/delivery-status", "message/global-delivery-status")
        payload = status.get_payload()
        if status.get_content_type() == "message/delivery-status":
            blocks = payload  # the email package parses it into its blocks of fields
        else:
            # message/global-delivery-status is parsed like any message/*:
            # one message whose header is the first block; split it again.
            [inner] = payload
            blocks = parse_fields_blocks(inner.as_bytes().decode("utf-8"))
        assert len(blocks) >= 2, "no per-recipient block"
        self.per_message = blocks[0]
        self.per_recipient = blocks[1:]
        self.returned = self.parts[2] if len(self.parts) == 3 else None

    def recipient(self, address):
        found = [b for b in self.per_recipient if b["Final-Recipient"].split(";", 1)[1].strip() == address]
        assert len(found) == 1, "Final-Recipient %s not in %r" % (address, [b["Final-Recipient"]
                                                                           for b in self.per_recipient])
        return found[0]

    @property
    def final_recipients(self):
        return sorted(b["Final-Recipient"].split(";", 1)[1].strip() for b in self.per_recipient)

    @property
    def actions(self):
        return sorted(b["Action"].strip().lower() for b in self.per_recipient)

    def returned_headers(self):
        """The returned message's header section as a Message (RFC 3464 §2, RFC 6522 §4)."""
        if self.returned.get_content_type() in ("message/rfc822", "message/global"):
            [inner] = self.returned.get_payload()
            return inner
        assert self.returned.get_content_type() in ("text/rfc822-headers", "message/global-headers")
        return email.message_from_string(self.returned.get_payload(), policy=email.policy.compat32)


def alice_dsns(t):
    return [Dsn(m) for m in maildir_messages(t.maildir("alice"))]


def dsn_queued_lines(t, qid):
    return [line for line in t.log_since_start().splitlines()
            if "event=dsn_queued" in line and "for=%s" % qid in line]


def wait_for_finish(t, qid, dsns=0, timeout=15):
    """Waits until `qid` left the queue, `dsns` DSNs were queued for it and
    every queued DSN was delivered (the queue is empty)."""
    def done():
        return (qid not in t.queue_list() and len(dsn_queued_lines(t, qid)) >= dsns
                and not t.queue_list())
    wait_until(done, timeout, what="message %s finished with %d DSN(s) delivered" % (qid, dsns))


def recipient_line(t, qid, address):
    """{"status", "attempts", "line"} for one recipient of `qid` from
    `tern queue list` (read here: ternlib's parser skips messages flagged
    delay-warned), or None when the message is not queued."""
    current = None
    for line in t.queue("list").stdout.splitlines():
        if not line.startswith(" "):
            current = line.split(" ", 1)[0]
            continue
        m = re.match(r"^    to=<([^>]*)>(?: orig=<[^>]*>)? status=(\w+) attempts=(\d+)", line)
        if m and current == qid and m.group(1) == address:
            return {"status": m.group(2), "attempts": int(m.group(3)), "line": line}
    return None


# -- tests ---------------------------------------------------------------------

def test_failed_recipient_gets_one_failure_dsn(sender_tern):
    with SmtpPeer(PLAIN_IP) as peer:
        t = sender_tern()
        content = make_message("dsn failure one", sender=ALICE, to="ok@plain.test",
                               body="the original body line\r\n")
        qid = submit(t, ["ok@plain.test", "reject@plain.test"], content)
        wait_for_finish(t, qid, dsns=1)

        # The 250 recipient got the message, once; the 550 one did not.
        [(mail_from, rcpts, data)] = peer.transactions
        assert mail_from == ALICE and rcpts == ["ok@plain.test"]
        assert b"Subject: dsn failure one" in data

        [dsn] = alice_dsns(t)
        m = dsn.message
        assert m["To"].strip() == "<%s>" % ALICE or ALICE in m["To"]
        assert m["Return-Path"] is None or m["Return-Path"].strip() == "<>"
        assert "MAILER-DAEMON" in m["From"]
        assert dsn.report_type == "delivery-status"
        assert dsn.per_message["Reporting-MTA"].strip() == "dns; mx.example.test"
        assert dsn.per_message["Arrival-Date"]
        assert dsn.final_recipients == ["reject@plain.test"], "the delivered recipient was reported too"
        r = dsn.recipient("reject@plain.test")
        assert r["Final-Recipient"].split(";")[0].strip().lower() == "rfc822"
        assert r["Action"].strip() == "failed"
        assert r["Status"].strip() == "5.1.1"
        assert r["Remote-MTA"].strip() == "dns; mx.plain.test"
        # RFC 3461 §6.3 (a), (d): no ENVID / ORCPT given, so no such fields.
        assert dsn.per_message["Original-Envelope-Id"] is None
        assert r["Original-Recipient"] is None
        assert email.utils.parsedate_to_datetime(r["Last-Attempt-Date"])
        diagnostic = r["Diagnostic-Code"]
        assert diagnostic.split(";")[0].strip().lower() == "smtp"
        assert "550 5.1.1 no such user here" in " ".join(diagnostic.split())
        # RET not given: a failure returns the whole message (RFC 3461 §4.3).
        assert dsn.returned.get_content_type() == "message/rfc822"
        original = dsn.returned_headers()
        assert original["Subject"] == "dsn failure one"
        assert "the original body line" in original.get_payload()
        assert "reject@plain.test" in dsn.parts[0].get_payload()
        # The peer offers no STARTTLS: opportunistic TLS falls back to plain text.
        [delivered] = [line for line in t.log_since_start().splitlines()
                       if "event=delivery" in line and "to=ok@plain.test" in line]
        assert "status=sent" in delivered, delivered
        assert "tls=no" in delivered
        assert "status=bounced" in t.log_since_start()


def test_authenticated_submission_bounce_reaches_the_submitter(tern_factory, dns):
    """The usual path of a user's mail: submission port, STARTTLS, AUTH (no
    trusted network); the bounce still comes back to her Maildir."""
    with SmtpPeer(PLAIN_IP) as peer:
        t = tern_factory(dns=[dns.address], trusted_networks=[])
        with smtplib.SMTP(*t.addr("submission"), local_hostname="laptop.example.test", timeout=10) as s:
            s.ehlo()
            s.starttls(context=client_tls_context())
            s.ehlo()
            s.login(ALICE, PASSWORDS[ALICE])
            refused = s.sendmail(ALICE, ["ok@plain.test", "reject-submitted@plain.test"],
                                 make_message("submitted", sender=ALICE, to="ok@plain.test").encode(),
                                 rcpt_options=["NOTIFY=FAILURE"])
            assert refused == {}
        [dsn] = [Dsn(m) for m in wait_until(lambda: maildir_messages(t.maildir("alice")), 15,
                                            what="the bounce in alice's Maildir")]
        assert dsn.final_recipients == ["reject-submitted@plain.test"]
        assert dsn.recipient("reject-submitted@plain.test")["Status"].strip() == "5.1.1"
        assert dsn.returned_headers()["Subject"] == "submitted"
        assert [r for _, r, _ in peer.transactions] == [["ok@plain.test"]]


def test_notify_success_relayed_by_us_or_passed_to_a_dsn_peer(sender_tern):
    with SmtpPeer(PLAIN_IP) as plain, SmtpPeer(DSN_IP, dsn=True) as dsn_peer:
        t = sender_tern()
        notify = "NOTIFY=SUCCESS,FAILURE"
        rcpt_options = {"a@plain.test": [notify, "ORCPT=rfc822;Orig-A@plain.test"],
                        "b@dsn.test": [notify, "ORCPT=rfc822;Orig-B@dsn.test"]}
        qid = submit(t, ["a@plain.test", "b@dsn.test"], make_message("notify success", sender=ALICE,
                                                                      to="a@plain.test"),
                     mail_options=["ENVID=Envelope-4711", "RET=HDRS"], rcpt_options=rcpt_options)
        wait_for_finish(t, qid, dsns=1)

        # The DSN peer got our NOTIFY, ORCPT and ENVID (RFC 3461 §5.2) and reports itself.
        [env] = dsn_peer.envelopes
        assert env["mail_from"] == ALICE
        assert env["mail_params"].get("ENVID") == "Envelope-4711"
        assert env["mail_params"].get("RET", "").upper() == "HDRS"
        params = env["rcpts"]["b@dsn.test"]
        assert sorted(params["NOTIFY"].upper().split(",")) == ["FAILURE", "SUCCESS"]
        assert params["ORCPT"] == "rfc822;Orig-B@dsn.test"
        # The plain peer got no DSN parameters at all (it did not announce DSN).
        assert plain.commands, "nothing reached the plain peer"
        for command in plain.commands:
            for keyword in ("NOTIFY=", "ORCPT=", "ENVID=", "RET="):
                assert keyword not in command.upper(), command
        assert [r for _, r, _ in plain.transactions] == [["a@plain.test"]]

        # One success DSN from tern, for the recipient relayed to the non-DSN peer only.
        assert len(dsn_queued_lines(t, qid)) == 1
        [dsn] = alice_dsns(t)
        assert dsn.per_message["Original-Envelope-Id"].strip() == "Envelope-4711"
        assert dsn.final_recipients == ["a@plain.test"]
        r = dsn.recipient("a@plain.test")
        assert r["Action"].strip() == "relayed"
        assert r["Status"].strip().startswith("2.")
        assert r["Original-Recipient"].replace(" ", "") == "rfc822;Orig-A@plain.test"
        assert r["Remote-MTA"].strip() == "dns; mx.plain.test"
        # Success DSNs return only the header section.
        assert dsn.returned.get_content_type() == "text/rfc822-headers"
        assert dsn.returned_headers()["Subject"] == "notify success"

        # Only to the DSN peer: delivered, and no report from tern at all.
        qid2 = submit(t, ["c@dsn.test"], make_message("dsn peer only", sender=ALICE, to="c@dsn.test"),
                      mail_options=["ENVID=Envelope-4712"], rcpt_options={"c@dsn.test": ["NOTIFY=SUCCESS"]})
        wait_until(lambda: len(dsn_peer.envelopes) == 2, 15, what="the second message at the DSN peer")
        wait_for_finish(t, qid2, dsns=0)
        assert dsn_peer.envelopes[1]["rcpts"]["c@dsn.test"]["NOTIFY"].upper() == "SUCCESS"
        assert dsn_peer.envelopes[1]["mail_params"]["ENVID"] == "Envelope-4712"
        assert dsn_queued_lines(t, qid2) == []
        assert len(maildir_files(t.maildir("alice"))) == 1


def test_notify_never_and_success_only_suppress_the_failure_dsn(sender_tern):
    with SmtpPeer(PLAIN_IP), SmtpPeer(DSN_IP, dsn=True) as dsn_peer:
        t = sender_tern()
        rcpt_options = {"reject-never@plain.test": ["NOTIFY=NEVER"],
                        "reject-success@plain.test": ["NOTIFY=SUCCESS"],
                        "reject-failure@dsn.test": ["NOTIFY=FAILURE"]}
        qid = submit(t, list(rcpt_options), make_message("selective notify", sender=ALICE, to="x@plain.test"),
                     rcpt_options=rcpt_options)
        wait_for_finish(t, qid, dsns=1)
        # The DSN peer refused at RCPT: tern reports that failure itself (the
        # peer never took responsibility), and only for the NOTIFY=FAILURE recipient.
        assert dsn_peer.envelopes == []
        assert len(dsn_queued_lines(t, qid)) == 1
        [dsn] = alice_dsns(t)
        assert dsn.final_recipients == ["reject-failure@dsn.test"]
        r = dsn.recipient("reject-failure@dsn.test")
        assert r["Action"].strip() == "failed" and r["Status"].strip() == "5.1.1"
        assert r["Remote-MTA"].strip() == "dns; mx.dsn.test"


def test_null_sender_failure_is_never_bounced(sender_tern):
    with SmtpPeer(PLAIN_IP) as peer:
        t = sender_tern()
        qid = submit(t, ["reject@plain.test"], make_message("bounce of a bounce", sender="MAILER-DAEMON@elsewhere.test",
                                                            to="reject@plain.test"), mail_from="")
        wait_until(lambda: qid not in t.queue_list(), 15, what="the message to fail and leave the queue")
        wait_until(lambda: "dsn_dropped" in t.log_since_start(), 5, what="the dsn_dropped log line")
        log = t.log_since_start()
        [dropped] = [line for line in log.splitlines() if "dsn_dropped" in line]
        assert qid in dropped and "null reverse-path" in dropped
        assert "event=dsn_queued" not in log
        assert "RCPT TO:<reject@plain.test>" in peer.commands
        assert any(c == "MAIL FROM:<>" or c.startswith("MAIL FROM:<> ") for c in peer.commands), peer.commands
        assert peer.transactions == []
        assert t.queue_list() == {}
        assert all_maildir_files(t.mail_root) == []


def test_smtputf8_message_to_a_peer_without_smtputf8_fails_with_a_dsn(sender_tern):
    with SmtpPeer(ASCII_IP, smtputf8=False) as peer:
        t = sender_tern()
        rcpt = "j\u00fcrgen@ascii.test"
        qid = submit(t, [rcpt], make_message("needs smtputf8", sender=ALICE, to="juergen@ascii.test"),
                     mail_options=["SMTPUTF8"], smtputf8=True)
        wait_for_finish(t, qid, dsns=1)
        # RFC 6531 §3.2: not given to a server without SMTPUTF8 at all.
        assert not any(c.startswith(("MAIL", "RCPT")) for c in peer.commands), peer.commands
        assert peer.transactions == []
        [dsn] = alice_dsns(t)
        # A UTF-8 address is reported in the global form (RFC 6533 §6).
        assert dsn.report_type == "global-delivery-status"
        assert dsn.parts[1].get_content_type() == "message/global-delivery-status"
        r = dsn.recipient(rcpt)
        assert r["Final-Recipient"].split(";")[0].strip().lower() == "utf-8"
        assert r["Action"].strip() == "failed"
        assert r["Status"].strip() == "5.6.7"
        assert "SMTPUTF8" in r["Diagnostic-Code"]
        assert dsn.returned.get_content_type() == "message/global"
        assert dsn.returned_headers()["Subject"] == "needs smtputf8"


def test_dropped_connection_421_and_slow_peer(sender_tern):
    with SmtpPeer(PLAIN_IP) as plain, SmtpPeer(DROP_IP, on_data="drop") as drop, \
            SmtpPeer(BUSY_IP, on_data="421 4.3.2 service shutting down") as busy, \
            SmtpPeer(SLOW_IP, data_delay=2.0) as slow:
        t = sender_tern(queue={"retry_schedule": '["1s"]'})
        rcpts = ["ok@plain.test", "x@drop.test", "y@busy.test", "z@slow.test"]
        qid = submit(t, rcpts, make_message("misbehaving receivers", sender=ALICE, to="ok@plain.test"))

        def retried():
            lines = [recipient_line(t, qid, r) for r in ("x@drop.test", "y@busy.test")]
            return lines if all(r and r["attempts"] >= 2 for r in lines) else None

        drop_line, busy_line = wait_until(retried, 15, what="two attempts for the dropping and the 421 peer")
        for line in (drop_line, busy_line):
            assert line["status"] == "pending", line["line"]
            m = re.search(r'last="(\d)\d\d', line["line"])
            assert m and m.group(1) == "4", "last reply not transient: " + line["line"]
        assert '"421 4.3.2' in busy_line["line"]
        assert 'last="451 4.4.2' in drop_line["line"], drop_line["line"]  # RFC 3463 X.4.2: bad connection
        # Each attempt reached the end of DATA at the misbehaving peers...
        assert sum(c.startswith("MAIL") for c in drop.commands) >= 2
        assert sum(c.startswith("MAIL") for c in busy.commands) >= 2
        assert drop.transactions == [] and busy.transactions == []
        # ... and the recipients that were accepted, including the slow one, were not sent again.
        assert recipient_line(t, qid, "ok@plain.test")["status"] == "delivered"
        assert recipient_line(t, qid, "z@slow.test")["status"] == "delivered"
        assert [r for _, r, _ in plain.transactions] == [["ok@plain.test"]]
        assert [r for _, r, _ in slow.transactions] == [["z@slow.test"]]
        assert sum(c.startswith("RCPT") for c in plain.commands) == 1
        assert sum(c.startswith("RCPT") for c in slow.commands) == 1
        # Transient trouble is not reported before delay_warning_after (4h by default).
        assert maildir_files(t.maildir("alice")) == []
        assert dsn_queued_lines(t, qid) == []


def test_ret_hdrs_returns_only_the_header_section(sender_tern):
    with SmtpPeer(PLAIN_IP):
        t = sender_tern()
        content = make_message("headers only please", sender=ALICE, to="reject@plain.test",
                               body="SECRET-BODY-LINE must not come back\r\n")
        qid = submit(t, ["reject@plain.test"], content, mail_options=["RET=HDRS"])
        wait_for_finish(t, qid, dsns=1)
        [dsn] = alice_dsns(t)
        assert dsn.recipient("reject@plain.test")["Action"].strip() == "failed"
        assert dsn.returned.get_content_type() == "text/rfc822-headers"
        assert dsn.returned_headers()["Subject"] == "headers only please"
        with open(maildir_files(t.maildir("alice"))[0], "rb") as f:
            raw = f.read()
        assert b"SECRET-BODY-LINE" not in raw
        assert b"Subject: headers only please" in raw


def test_delay_warning_sent_once(sender_tern):
    with SmtpPeer(PLAIN_IP) as peer:
        t = sender_tern(queue={"retry_schedule": '["1s"]', "delay_warning_after": '"1s"'})
        qid = submit(t, ["defer@plain.test"], make_message("slow to arrive", sender=ALICE, to="defer@plain.test"))
        wait_until(lambda: maildir_files(t.maildir("alice")), 15, what="the delay DSN in alice's Maildir")

        # More attempts after the warning do not warn again (recorded in the envelope).
        wait_until(lambda: (recipient_line(t, qid, "defer@plain.test") or {}).get("attempts", 0) >= 4, 15,
                   what="two more attempts after the warning")
        assert len(dsn_queued_lines(t, qid)) == 1
        assert "kind=delay" in dsn_queued_lines(t, qid)[0]
        assert "delay-warned" in t.queue("list").stdout
        [dsn] = alice_dsns(t)
        r = dsn.recipient("defer@plain.test")
        assert r["Action"].strip() == "delayed"
        assert r["Status"].strip() == "4.2.1"
        assert email.utils.parsedate_to_datetime(r["Will-Retry-Until"]) > \
            email.utils.parsedate_to_datetime(r["Last-Attempt-Date"])
        assert r["Remote-MTA"].strip() == "dns; mx.plain.test"
        assert "450 4.2.1 mailbox busy" in " ".join(r["Diagnostic-Code"].split())
        assert dsn.returned.get_content_type() == "text/rfc822-headers"
        assert dsn.returned_headers()["Subject"] == "slow to arrive"
        assert peer.transactions == []

        # The warning is durable: after a restart, more attempts and still no second warning.
        before = recipient_line(t, qid, "defer@plain.test")["attempts"]
        assert t.stop() == 0
        t.start()
        wait_until(lambda: (recipient_line(t, qid, "defer@plain.test") or {}).get("attempts", 0) >= before + 2, 15,
                   what="two attempts after the restart")
        assert "event=dsn_queued" not in t.log_since_start()
        assert len(maildir_files(t.maildir("alice"))) == 1


def test_xtext_in_envid_and_orcpt_is_decoded_in_the_dsn_and_kept_encoded_on_the_wire(sender_tern):
    with SmtpPeer(PLAIN_IP), SmtpPeer(DSN_IP, dsn=True) as dsn_peer:
        t = sender_tern()
        # RFC 3461 §4: "+2B" is "+", "+3D" is "=" in xtext.
        rcpt_options = {"reject@plain.test": ["ORCPT=rfc822;first+2Btag@plain.test"],
                        "ok@dsn.test": ["ORCPT=rfc822;second+2Btag@dsn.test"]}
        qid = submit(t, list(rcpt_options), make_message("xtext", sender=ALICE, to="x@plain.test"),
                     mail_options=["ENVID=Id+2Bwith+3Dsigns"], rcpt_options=rcpt_options)
        wait_for_finish(t, qid, dsns=1)
        # Passed on to the DSN peer still xtext-encoded (same value as received).
        [env] = dsn_peer.envelopes
        assert env["mail_params"]["ENVID"].upper() == "ID+2BWITH+3DSIGNS"
        assert env["rcpts"]["ok@dsn.test"]["ORCPT"].upper() == "RFC822;SECOND+2BTAG@DSN.TEST"
        # Parameters the sender did not give are not invented.
        assert "NOTIFY" not in env["rcpts"]["ok@dsn.test"] and "RET" not in env["mail_params"]
        # RFC 3461 §6.3 (a), (d): decoded in the DSN.
        [dsn] = alice_dsns(t)
        assert dsn.per_message["Original-Envelope-Id"].strip() == "Id+with=signs"
        assert dsn.final_recipients == ["reject@plain.test"]
        original = dsn.recipient("reject@plain.test")["Original-Recipient"]
        assert original.replace(" ", "") == "rfc822;first+tag@plain.test"


def test_one_attempt_with_success_and_failure_gives_one_dsn_of_each_kind(sender_tern):
    with SmtpPeer(PLAIN_IP) as peer:
        t = sender_tern()
        notify = ["NOTIFY=SUCCESS,FAILURE"]
        body = "Gr\u00fc\u00dfe aus dem Test\r\n"
        qid = submit(t, ["ok@plain.test", "reject@plain.test"],
                     make_message("two kinds", sender=ALICE, to="ok@plain.test", body=body),
                     mail_options=["BODY=8BITMIME"], rcpt_options={"ok@plain.test": notify,
                                                                   "reject@plain.test": notify})
        wait_for_finish(t, qid, dsns=2)
        kinds = sorted(re.search(r"kind=(\w+)", line).group(1) for line in dsn_queued_lines(t, qid))
        assert kinds == ["failure", "success"]
        by_action = {tuple(d.actions): d for d in alice_dsns(t)}
        assert sorted(by_action) == [("failed",), ("relayed",)]
        assert by_action[("failed",)].final_recipients == ["reject@plain.test"]
        assert by_action[("relayed",)].final_recipients == ["ok@plain.test"]
        # The failure returns the 8-bit original unchanged; the success only its header section.
        failed = by_action[("failed",)]
        assert failed.returned.get_content_type() == "message/rfc822"
        assert failed.returned.get("Content-Transfer-Encoding", "").lower() in ("8bit", "binary")
        assert by_action[("relayed",)].returned.get_content_type() == "text/rfc822-headers"
        raw = [open(f, "rb").read() for f in maildir_files(t.maildir("alice"))]
        assert sum(body.strip().encode("utf-8") in r for r in raw) == 1
        assert [r for _, r, _ in peer.transactions] == [["ok@plain.test"]]


def test_permanent_reply_after_data_fails_every_recipient_of_the_transaction(sender_tern):
    with SmtpPeer(BIG_IP, on_data="552 5.3.4 message too big for this server") as peer:
        t = sender_tern()
        qid = submit(t, ["one@big.test", "two@big.test"], make_message("too big", sender=ALICE, to="one@big.test"))
        wait_for_finish(t, qid, dsns=1)
        assert sum(c.startswith("MAIL") for c in peer.commands) == 1  # one transaction, not retried
        [dsn] = alice_dsns(t)
        assert dsn.final_recipients == ["one@big.test", "two@big.test"]
        for address in ("one@big.test", "two@big.test"):
            r = dsn.recipient(address)
            assert r["Action"].strip() == "failed" and r["Status"].strip() == "5.3.4"
            assert "552 5.3.4 message too big" in " ".join(r["Diagnostic-Code"].split())
            assert r["Remote-MTA"].strip() == "dns; mx.big.test"


def test_dsn_to_a_remote_sender_uses_the_null_path_and_a_bounced_dsn_is_dropped(sender_tern):
    with SmtpPeer(PLAIN_IP) as peer:
        t = sender_tern()
        # owner@plain.test sent a message to a rejected recipient: its DSN goes out to the peer from <>.
        qid = submit(t, ["reject-1@plain.test"], make_message("remote sender", sender="owner@plain.test",
                                                              to="reject-1@plain.test"), mail_from="owner@plain.test")
        wait_for_finish(t, qid, dsns=1)
        [(mail_from, rcpts, data)] = peer.transactions
        assert mail_from == "<>" and rcpts == ["owner@plain.test"]  # aiosmtpd records the null path as "<>"
        dsn = Dsn(email.message_from_bytes(data, policy=email.policy.compat32))
        assert dsn.recipient("reject-1@plain.test")["Action"].strip() == "failed"
        assert any(c == "MAIL FROM:<>" or c.startswith("MAIL FROM:<> ") for c in peer.commands)

        # The sender's own server refuses the DSN: dropped, never bounced again (RFC 3461 §6.1 / RFC 5321 §4.5.5).
        qid2 = submit(t, ["reject-2@plain.test"], make_message("sender gone", sender="reject-sender@plain.test",
                                                               to="reject-2@plain.test"),
                      mail_from="reject-sender@plain.test")
        wait_for_finish(t, qid2, dsns=1)
        [dsn_line] = dsn_queued_lines(t, qid2)
        dsn_id = re.search(r" id=(\S+)", dsn_line).group(1)
        wait_until(lambda: "dsn_dropped id=%s" % dsn_id in t.log_since_start(), 5, what="the DSN dropped")
        assert len(dsn_queued_lines(t, dsn_id)) == 0
        assert "RCPT TO:<reject-sender@plain.test>" in peer.commands
        assert len(peer.transactions) == 1
        assert t.queue_list() == {}


def test_peer_closing_after_each_message_does_not_defer_the_next(sender_tern):
    """tern keeps idle connections for the next message; when the peer has
    closed one meanwhile, the next message must go over a new connection
    instead of being deferred (or bounced)."""
    with SmtpPeer(ONESHOT_IP, close_after_data=True) as peer:
        t = sender_tern()
        for n in range(3):
            qid = submit(t, ["user%d@oneshot.test" % n], make_message("oneshot %d" % n, sender=ALICE,
                                                                       to="user%d@oneshot.test" % n))
            wait_until(lambda: len(peer.transactions) == n + 1, 10, what="message %d at the peer" % n)
            wait_until(lambda: qid not in t.queue_list(), 5, what="message %d to leave the queue" % n)
            # The next message only once the peer has really closed this
            # connection (50 ms after its reply): otherwise a fast enough
            # submission would still find it open and use it.
            wait_until(lambda: peer.open_connections == 0, 5, what="the peer to close connection %d" % n)
        assert [r for _, r, _ in peer.transactions] == [["user0@oneshot.test"], ["user1@oneshot.test"],
                                                        ["user2@oneshot.test"]]
        # The peer closed each one before the next message: a new connection
        # per message (an ASan run once counted one connection more, with
        # three messages sent).
        assert peer.connections >= 3
        log = t.log_since_start()
        assert log.count("status=sent") == 3 and "status=deferred" not in log
        assert maildir_files(t.maildir("alice")) == []


def test_421_during_rcpt_defers_the_recipients_already_accepted(sender_tern):
    """RFC 5321 §3.8: a 421 ends the session; the transaction never reached
    DATA, so recipients accepted before it were not delivered either."""
    with SmtpPeer(CLOSING_IP, rcpt_replies={"shutdown": "421 4.3.2 closing down now"}) as peer:
        t = sender_tern()
        rcpts = ["first@closing.test", "shutdown@closing.test", "last@closing.test"]
        qid = submit(t, rcpts, make_message("closing peer", sender=ALICE, to="first@closing.test"))

        def attempted():
            lines = [recipient_line(t, qid, r) for r in rcpts]
            return lines if all(r and r["attempts"] >= 1 for r in lines) else None

        lines = wait_until(attempted, 15, what="the attempt recorded for all recipients")
        for line in lines:
            assert line["status"] == "pending", line["line"]
            assert re.search(r'last="4\d\d ', line["line"]), line["line"]
        assert "421 4.3.2" in lines[1]["line"] and "closing down now" in lines[1]["line"]
        assert peer.transactions == []
        assert not any(c.startswith("RCPT TO:<last@") for c in peer.commands), peer.commands
        assert maildir_files(t.maildir("alice")) == []
        assert dsn_queued_lines(t, qid) == []


def test_expiry_turns_a_deferral_into_a_failure_dsn(sender_tern):
    with SmtpPeer(PLAIN_IP) as peer:
        t = sender_tern(queue={"retry_schedule": '["1s"]', "max_age": '"2s"'})
        qid = submit(t, ["defer@plain.test"], make_message("never accepted", sender=ALICE, to="defer@plain.test"))
        wait_for_finish(t, qid, dsns=1, timeout=15)
        # RFC 5321 §4.5.4.1: tried until max_age, then given up and reported once.
        attempts = sum(c.startswith("RCPT") for c in peer.commands)
        assert attempts >= 2, peer.commands
        [line] = dsn_queued_lines(t, qid)
        assert "kind=failure" in line
        [dsn] = alice_dsns(t)
        r = dsn.recipient("defer@plain.test")
        assert r["Action"].strip() == "failed"
        # The last reply's status stays (a persistent transient one, RFC 3463 §3.1, like Postfix's).
        assert re.fullmatch(r"[45]\.\d{1,3}\.\d{1,3}", r["Status"].strip()), r["Status"]
        assert "message expired" in r["Diagnostic-Code"]
        assert "450 4.2.1 mailbox busy" in " ".join(r["Diagnostic-Code"].split())
        assert peer.transactions == []


def test_postfix_next_hop_reports_relayed_back_to_alice(tern_factory, dns, world_readable_tmp):
    """A real DSN-capable next hop: tern relays to a private Postfix (route
    `postfix.test`), which passes the message to a non-DSN sink and so issues
    the "relayed" report itself (RFC 3461 §5.2.2). Postfix sends that DSN for
    example.test back to tern, so alice's Maildir shows what a sender sees:
    one DSN, Postfix's, carrying the ENVID and ORCPT that tern passed on."""
    require_binary(POSTFIX)
    require_binary("postconf")
    with SmtpPeer("127.0.0.1", free_port()) as sink:
        postfix_port = free_port()
        config = "\n".join(["[[transport]]", 'name = "pf"', 'kind = "smtp"', 'host = "127.0.0.1:%d"' % postfix_port,
                            "", "[[route]]", 'to_domain = ["postfix.test"]', 'transport = "pf"', ""])
        t = tern_factory(dns=[dns.address], trusted_networks=["127.0.0.0/8"], extra_config=config)
        pf = RelayingPostfix(world_readable_tmp + "/postfix", "[127.0.0.1]:%d" % sink.controller.port,
                             port=postfix_port)
        pf.postconf(["-e", "transport_maps=inline:{example.test=smtp:[127.0.0.1]:%d}" % t.ports["mx"]])
        pf.start()
        try:
            qid = submit(t, ["u@postfix.test"], make_message("through postfix", sender=ALICE, to="u@postfix.test"),
                         mail_options=["ENVID=Envelope-PF-1", "RET=HDRS"],
                         rcpt_options={"u@postfix.test": ["NOTIFY=SUCCESS,FAILURE",
                                                          "ORCPT=rfc822;Orig-U@postfix.test"]})
            wait_until(lambda: maildir_files(t.maildir("alice")), 20, what="Postfix's DSN in alice's Maildir")
        finally:
            pf.stop()
        [(mail_from, rcpts, data)] = sink.transactions
        assert mail_from == ALICE and rcpts == ["u@postfix.test"]
        assert b"Subject: through postfix" in data
        assert dsn_queued_lines(t, qid) == [], "tern reported although its next hop has DSN"
        [dsn] = alice_dsns(t)
        assert dsn.message["Return-Path"].strip() == "<>"
        assert dsn.report_type == "delivery-status"
        assert "relay.example.net" in dsn.per_message["Reporting-MTA"]
        assert dsn.per_message["Original-Envelope-Id"].strip() == "Envelope-PF-1"
        r = dsn.recipient("u@postfix.test")
        assert r["Action"].strip() == "relayed"
        assert r["Original-Recipient"].replace(" ", "") == "rfc822;Orig-U@postfix.test"
        assert dsn.returned_headers()["Subject"] == "through postfix"
