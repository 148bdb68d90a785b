"""Anti-abuse checks through the real MX listener (issue 5 item 4): a client
listed on a DNSBL served by a local dnsmasq is refused at MAIL FROM with the
list's TXT; greylisting answers the first attempt with 451 and accepts the
retry after the delay (and the state survives a restart); sender and
recipient access maps reject (and are reloaded when the file changes),
DISCARD accepts without queueing; the per-IP connection rate gives 421; the
iprev result is recorded in Authentication-Results. Each test checks the
reply and the queue/Maildir."""
import os
import smtplib
import time

from dnsserver import DnsServer
from ternlib import maildir_files, wait_for_messages, wait_until

RCPT = "alice@example.test"
SENDER = "someone@outside.test"


def message(subject, frm=SENDER):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@test>\r\n\r\nHello.\r\n" % (frm, RCPT, subject, subject.replace(" ", "."))).encode()


def transaction(t, mail_from, rcpts, data, helo="mail.outside.test"):
    """Runs one transaction; returns (stage, code, text) of the first refusal, or ("ok", 250, text)."""
    with smtplib.SMTP("127.0.0.1", t.ports["mx"], local_hostname=helo, timeout=30) as s:
        code, text = s.ehlo(helo)
        if code >= 400:
            return "helo", code, text.decode()
        code, text = s.mail(mail_from)
        if code >= 400:
            return "mail", code, text.decode()
        for r in rcpts:
            code, text = s.rcpt(r)
            if code >= 400:
                return "rcpt", code, text.decode()
        code, text = s.data(data)
        if code >= 400:
            return "data", code, text.decode()
        return "ok", code, text.decode()


def alice_messages(t):
    return maildir_files(t.maildir("alice"))


def test_dnsbl_listing_rejects_with_txt_and_iprev_is_recorded(tern_factory, tmp_path):
    dns = DnsServer(str(tmp_path), zones=("test",))
    dns.host("1.0.0.127.zen.dnsbl.test", "127.0.0.2")
    dns.txt("1.0.0.127.zen.dnsbl.test", "Listed by the test list")
    dns.host("outside.test", "192.0.2.1")
    dns.start()
    try:
        listed = tern_factory(name="listed", dns=[dns.address], extra_config='[policy]\ndnsbl = ["zen.dnsbl.test"]\n')
        stage, code, text = transaction(listed, SENDER, [RCPT], message("from a listed client"))
        assert (stage, code) == ("mail", 554), text
        assert "5.7.1" in text and "blocked using zen.dnsbl.test; Listed by the test list" in text
        assert listed.queue_list() == {}
        assert "event=anti_abuse" in listed.log_since_start()

        # A list that does not list the client: accepted, with iprev in Authentication-Results
        # (127.0.0.1 has no PTR in the test DNS: iprev=fail, recorded only).
        clean = tern_factory(name="clean", dns=[dns.address], extra_config='[policy]\ndnsbl = ["other.dnsbl.test"]\n')
        stage, code, text = transaction(clean, SENDER, [RCPT], message("from a clean client"))
        assert (stage, code) == ("ok", 250), text
        [msg] = wait_for_messages(clean.maildir("alice"), 1)
        ar = " ".join(" ".join(v.split()) for v in msg.get_all("Authentication-Results", []))
        assert "iprev=fail" in ar and "policy.iprev=127.0.0.1" in ar, ar
    finally:
        dns.stop()


def test_greylisting_first_try_451_then_accept_and_survives_restart(tern_factory):
    t = tern_factory(extra_config="[policy]\ngreylist = { enabled = true, delay = 2, pass_after = 1 }\n")
    stage, code, text = transaction(t, SENDER, [RCPT], message("greylisted"))
    assert (stage, code) == ("rcpt", 451), text
    assert "4.7.1" in text and "Greylisted" in text
    assert t.queue_list() == {}
    stage, code, text = transaction(t, SENDER, [RCPT], message("too early"))
    assert (stage, code) == ("rcpt", 451), text
    time.sleep(2.2)
    stage, code, text = transaction(t, SENDER, [RCPT], message("retried"))
    assert (stage, code) == ("ok", 250), text
    wait_for_messages(t.maildir("alice"), 1)
    assert os.path.exists(os.path.join(t.data_dir, "greylist"))

    # After a restart the client network (pass_after = 1) is still whitelisted: a new triplet passes at once.
    t.stop()
    t.start()
    stage, code, text = transaction(t, "other@outside.test", ["bob@example.test"], message("after restart"))
    assert (stage, code) == ("ok", 250), text


def test_access_maps_reject_discard_and_reload(tern_factory, tmp_path):
    senders = tmp_path / "sender_access"
    recipients = tmp_path / "recipient_access"
    senders.write_text("@spammer.test REJECT Go away\n@blackhole.test DISCARD\n")
    recipients.write_text("/^bob@/ REJECT Mailbox closed\n")
    t = tern_factory(extra_config='[policy]\nsender_access = "%s"\nrecipient_access = "%s"\n' % (senders, recipients))

    stage, code, text = transaction(t, "x@spammer.test", [RCPT], message("spam"))
    assert (stage, code) == ("mail", 550), text
    assert text.startswith("5.7.1 Sender address rejected: Go away")

    stage, code, text = transaction(t, SENDER, ["bob@example.test"], message("to bob"))
    assert (stage, code) == ("rcpt", 550), text
    assert "Recipient address rejected: Mailbox closed" in text

    stage, code, text = transaction(t, "x@blackhole.test", [RCPT], message("discarded"))
    assert (stage, code) == ("ok", 250), text
    assert "discarded" in text
    assert t.queue_list() == {}

    stage, code, text = transaction(t, SENDER, [RCPT], message("accepted"))
    assert (stage, code) == ("ok", 250), text
    wait_for_messages(t.maildir("alice"), 1)

    # The map is re-read when the file changes (checked at most once a second).
    tmp = tmp_path / "sender_access.new"
    tmp.write_text("@outside.test REJECT Changed our mind\n")
    os.rename(tmp, senders)
    time.sleep(1.2)
    stage, code, text = transaction(t, SENDER, [RCPT], message("after reload"))
    assert (stage, code) == ("mail", 550), text
    assert "Changed our mind" in text
    wait_until(lambda: "event=access_map_reloaded" in t.log_since_start(), what="reload logged")
    assert len(alice_messages(t)) == 1  # the discarded message was never delivered


def test_connection_rate_limit_421(tern_factory):
    t = tern_factory(extra_config="[policy]\nrate_limit = { connections_per_minute_per_ip = 2 }\n")
    for _ in range(2):
        with smtplib.SMTP("127.0.0.1", t.ports["mx"], timeout=10) as s:
            assert s.noop()[0] == 250
    try:
        s = smtplib.SMTP("127.0.0.1", t.ports["mx"], timeout=10)
        s.close()
        raise AssertionError("third connection within a minute was accepted")
    except smtplib.SMTPConnectError as e:
        assert e.smtp_code == 421
        assert b"4.7.0" in e.smtp_error and b"Too many connections" in e.smtp_error


def test_require_helo(tern_factory):
    """[policy] require_helo = false lets a client send MAIL without greeting on
    the MX listener (the message is queued); the default answers 503 5.5.1.
    Submission always requires EHLO."""
    from ternlib import RawSmtp
    lax = tern_factory(name="lax", extra_config="[policy]\nrequire_helo = false\n")
    with RawSmtp(lax.addr("mx")) as c:
        assert c.reply()[0] == 220
        assert c.cmd("MAIL FROM:<" + SENDER + ">") == (250, ["2.1.0 Ok"])
        assert c.cmd("RCPT TO:<" + RCPT + ">")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(message("no greeting").decode() + ".\r\n")
        code, lines = c.reply()
        assert code == 250 and "queued as" in lines[0], lines
    [msg] = wait_for_messages(lax.maildir("alice"), 1)
    assert msg["Subject"] == "no greeting"
    with RawSmtp(lax.addr("submission")) as c:
        assert c.reply()[0] == 220
        assert c.cmd("MAIL FROM:<" + SENDER + ">") == (503, ["5.5.1 Send HELO/EHLO first"])

    strict = tern_factory(name="strict")
    with RawSmtp(strict.addr("mx")) as c:
        assert c.reply()[0] == 220
        assert c.cmd("MAIL FROM:<" + SENDER + ">") == (503, ["5.5.1 Send HELO/EHLO first"])


def test_reject_unknown_sender_domain(tern_factory, tmp_path):
    """reject_unknown_sender_domain (on by default) at MAIL FROM: a domain
    without MX, A or AAAA gets 550 5.1.8, a null MX (RFC 7505) 550 5.7.27, a
    lookup that fails (SERVFAIL) 450 4.1.8; a domain with an address record is
    accepted and its message delivered."""
    dns = DnsServer(str(tmp_path), zones=("test",))
    dns.txt("txtonly.test", "v=spf1 -all")  # exists, but no MX/A/AAAA
    dns.mx("nullmx.test", ".", 0)
    dns.servfail("broken.test")
    dns.host("hasaddress.test", "192.0.2.10")
    dns.start()
    try:
        t = tern_factory(dns=[dns.address], reject_unknown_sender_domain=None)
        for sender, expected in (("x@nowhere.test", (550, "5.1.8 Sender address rejected: domain not found")),
                                 ("x@txtonly.test", (550, "5.1.8 Sender address rejected: domain not found")),
                                 ("x@nullmx.test", (550, "5.7.27 Sender address rejected: domain does not accept "
                                                         "mail (null MX)")),
                                 ("x@broken.test", (450, "4.1.8 Sender address rejected: domain lookup failed "
                                                         "temporarily, try later"))):
            stage, code, text = transaction(t, sender, [RCPT], message("from " + sender, frm=sender))
            assert (stage, code, text) == ("mail",) + expected, (sender, stage, code, text)
        assert t.queue_list() == {}
        assert "event=anti_abuse" in t.log_since_start() and "null MX" in t.log_since_start()

        stage, code, text = transaction(t, "x@hasaddress.test", [RCPT], message("from an address", "x@hasaddress.test"))
        assert (stage, code) == ("ok", 250), text
        [msg] = wait_for_messages(t.maildir("alice"), 1)
        assert msg["Subject"] == "from an address"
        # The null sender (bounces, RFC 5321 §4.5.5) is never checked.
        stage, code, text = transaction(t, "", [RCPT], message("a bounce", "MAILER-DAEMON@nowhere.test"))
        assert (stage, code) == ("ok", 250), text

        # Switched off, the unknown domain is accepted at MAIL FROM.
        off = tern_factory(name="off", dns=[dns.address], reject_unknown_sender_domain=False)
        stage, code, text = transaction(off, "x@nowhere.test", [RCPT], message("unchecked", "x@nowhere.test"))
        assert (stage, code) == ("ok", 250), text
    finally:
        dns.stop()


def test_bad_policy_files_stop_start_up(tern_factory, tmp_path):
    """A sender/recipient access map with a syntax error or missing, or a
    greylist file that cannot be opened, is a start-up error: `tern serve`
    exits 1 naming the file (and line); `tern config check` reports the maps."""
    import subprocess
    from ternlib import TERN_BIN
    bad = tmp_path / "sender_access"
    bad.write_text("good@x.test OK\n@y.test FROBNICATE\n")
    t = tern_factory(start=False, extra_config='[policy]\nsender_access = "%s"\n' % bad)
    res = subprocess.run([TERN_BIN, "serve", "--config", t.config_path], capture_output=True, text=True, timeout=20)
    assert res.returncode == 1, res
    assert "event=startup_failed" in res.stderr and "%s:2:" % bad in res.stderr, res.stderr
    res = t.run_cli(["config", "check"], check=False)
    assert res.returncode == 1 and "policy.sender_access: %s:2:" % bad in res.stderr, res

    missing = tmp_path / "no_such_map"
    t2 = tern_factory(name="missing", start=False, extra_config='[policy]\nrecipient_access = "%s"\n' % missing)
    res = subprocess.run([TERN_BIN, "serve", "--config", t2.config_path], capture_output=True, text=True, timeout=20)
    assert res.returncode == 1 and str(missing) in res.stderr, res.stderr
    res = t2.run_cli(["config", "check"], check=False)
    assert res.returncode == 1 and str(missing) in res.stderr, res

    t3 = tern_factory(name="greylist", start=False, extra_config="[policy]\ngreylist = { enabled = true }\n")
    os.makedirs(os.path.join(t3.data_dir, "greylist"))  # a directory where the file should be
    res = subprocess.run([TERN_BIN, "serve", "--config", t3.config_path], capture_output=True, text=True, timeout=20)
    assert res.returncode == 1, res
    assert "policy.greylist" in res.stderr and os.path.join(t3.data_dir, "greylist") in res.stderr, res.stderr


def test_policy_explain_anti_abuse(tern_factory, tmp_path):
    """`tern policy explain` shows the anti-abuse checks at their stages: an
    access-map reject at MAIL FROM, a DNSBL hit (looked up at connect, refused
    at MAIL FROM), a recipient_access reject, and rate limits / greylisting as
    not evaluated (they depend on the running server's state)."""
    dns = DnsServer(str(tmp_path), zones=("test",))
    dns.host("1.0.0.127.zen.dnsbl.test", "127.0.0.2")
    dns.txt("1.0.0.127.zen.dnsbl.test", "Listed by the test list")
    dns.mx("outside.test", "mx.outside.test")
    dns.start()
    senders = tmp_path / "sender_access"
    senders.write_text("@spammer.test REJECT Go away\n@friend.test OK\n")
    recipients = tmp_path / "recipient_access"
    recipients.write_text("bob@example.test REJECT Mailbox closed\n")
    try:
        t = tern_factory(dns=[dns.address], reject_unknown_sender_domain=None, extra_config=(
            '[policy]\nsender_access = "%s"\nrecipient_access = "%s"\ndnsbl = ["zen.dnsbl.test"]\n'
            'greylist = { enabled = true }\nrate_limit = { connections_per_minute_per_ip = 30 }\n'
            % (senders, recipients)))

        def explain(mail_from, rcpt, ip="127.0.0.1"):
            res = t.run_cli(["policy", "explain", "--ip", ip, "--helo", "mail.outside.test",
                             "--mail-from", mail_from, "--rcpt", rcpt])
            return res.stdout

        out = explain("x@spammer.test", RCPT)
        assert "rate_limit=not evaluated (stateful)" in out, out
        assert "dnsbl=listed" in out and "zen.dnsbl.test" in out, out  # looked up at connect
        assert "sender_access=reject" in out, out
        assert out.rstrip().endswith("final: 550 5.7.1 Sender address rejected: Go away"), out

        out = explain(SENDER, RCPT)
        assert "sender_access=pass" in out and "dnsbl=reject" in out and "sender_domain" not in out, out
        assert out.rstrip().endswith("final: 554 5.7.1 Service unavailable; client [127.0.0.1] blocked using "
                                     "zen.dnsbl.test; Listed by the test list"), out

        # A client the list does not know: the DNSBL passes, the sender domain is checked,
        # recipient_access refuses bob; alice would only meet greylisting (not evaluated).
        out = explain(SENDER, "bob@example.test", ip="127.0.0.9")
        assert "dnsbl=pass" in out and "sender_domain=pass" in out, out
        assert "recipient_access=reject" in out, out
        assert out.rstrip().endswith("final: 550 5.7.1 <bob@example.test>: Recipient address rejected: "
                                     "Mailbox closed"), out
        out = explain(SENDER, RCPT, ip="127.0.0.9")
        assert "greylist=not evaluated (stateful)" in out, out
        out = explain("x@nowhere.test", RCPT, ip="127.0.0.9")
        assert "sender_domain=reject" in out and "final: 550 5.1.8" in out, out
        # Nothing was sent, queued or greylisted by explaining.
        assert t.queue_list() == {} and "event=queued" not in t.log_since_start()
    finally:
        dns.stop()
