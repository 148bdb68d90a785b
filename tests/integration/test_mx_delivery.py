"""Inbound MX delivery driven by swaks: local accounts, +detail, aliases,
catch-all, unknown recipients and relay control (RFC 5321 §3.6, §4.4)."""

import os
import re
import subprocess

import pytest

from conftest import require_binary
from ternlib import find_by_subject, parse_queue_list, wait_for_messages, wait_until


def swaks(server, to, sender="someone@example.net", subject="swaks test", extra=()):
    require_binary("swaks")
    res = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(server.ports["mx"]), "--helo", "client.example.net",
         "--from", sender, "--to", to, "--header", "Subject: " + subject, "--timeout", "10"] + list(extra),
        capture_output=True, text=True, timeout=30)
    return res


def server_replies(swaks_result):
    """The server's reply lines ("<~ " / "<- " / "<** ") from swaks' transcript."""
    return [line[4:] if line.startswith("<** ") else line[3:] for line in swaks_result.stdout.splitlines()
            if line.startswith(("<- ", "<** ", "<~ "))]


def queued_id_from(res):
    m = re.search(r"queued as (\S+)", res.stdout)
    assert m, "no 'queued as' in swaks output:\n" + res.stdout
    return m.group(1)


def test_plain_delivery_has_trace_headers(tern):
    res = swaks(tern, "alice@example.test", subject="plain delivery")
    assert res.returncode == 0, res.stdout + res.stderr
    qid = queued_id_from(res)
    [msg] = wait_for_messages(tern.maildir("alice"), 1)
    assert msg["Subject"] == "plain delivery"
    # RFC 5321 §4.4: Return-Path added at final delivery, with the reverse-path.
    assert msg["Return-Path"] == "<someone@example.net>"
    assert msg["Delivered-To"] == "alice@example.test"
    received = msg.get_all("Received")
    assert len(received) == 1, received
    r = " ".join(received[0].split())
    assert r.startswith("from client.example.net ("), r
    assert "[127.0.0.1]" in r
    assert "by mx.example.test (tern) with ESMTP id " + qid in r, r
    assert "for <alice@example.test>;" in r, r
    # Return-Path and Delivered-To come before the trace header.
    keys = msg.keys()
    assert keys.index("Return-Path") < keys.index("Received")


def test_plus_detail_goes_to_the_same_maildir(tern):
    res = swaks(tern, "alice+lists@example.test", subject="with detail")
    assert res.returncode == 0, res.stdout
    [msg] = wait_for_messages(tern.maildir("alice"), 1)
    assert msg["Subject"] == "with detail"
    assert "for <alice+lists@example.test>" in " ".join(msg["Received"].split())
    # Nothing created for a separate "alice+lists" mailbox.
    assert not os.path.exists(tern.maildir("alice+lists"))


def test_alias_with_two_targets_delivers_to_both(tern):
    res = swaks(tern, "sales@example.test", subject="to sales")
    assert res.returncode == 0, res.stdout
    for user in ("alice", "bob"):
        msgs = wait_for_messages(tern.maildir(user), 1)
        assert len(find_by_subject(msgs, "to sales")) == 1, user
        assert msgs[0]["Return-Path"] == "<someone@example.net>"
    assert wait_for_messages(tern.maildir("carol"), 0) == []


def test_qualified_alias_and_catch_all(tern):
    res = swaks(tern, "info@example.test", subject="to info")
    assert res.returncode == 0, res.stdout
    [msg] = wait_for_messages(tern.maildir("carol"), 1)
    assert msg["Subject"] == "to info"
    assert msg["Delivered-To"] == "info@example.test"


def test_catch_all_alias_delivers_any_local_part(tern):
    t = tern
    for i, local in enumerate(("random", "x.y", "whatever+tag")):
        res = swaks(t, local + "@other.test", subject="catch %d" % i)
        assert res.returncode == 0, res.stdout
    msgs = wait_for_messages(t.maildir("carol"), 3)
    assert sorted(m["Subject"] for m in msgs) == ["catch 0", "catch 1", "catch 2"]
    # The catch-all does not apply to example.test.
    res = swaks(t, "random@example.test", subject="nope")
    assert res.returncode != 0
    assert any(r.startswith("550 5.1.1") for r in server_replies(res)), res.stdout


def test_unknown_local_recipient_is_550_at_rcpt(tern):
    res = swaks(tern, "nobody@example.test", subject="unknown")
    assert res.returncode != 0
    replies = server_replies(res)
    rcpt_reply = [r for r in replies if "nobody@example.test" in r]
    assert rcpt_reply and rcpt_reply[0].startswith("550 5.1.1 "), replies
    assert "queued as" not in res.stdout


def test_relay_from_untrusted_client_is_denied(tern):
    res = swaks(tern, "victim@elsewhere.example", subject="relay attempt")
    assert res.returncode != 0
    replies = server_replies(res)
    assert any(r.startswith("554 5.7.1 ") and "Relay access denied" in r for r in replies), replies
    assert "queue is empty" in tern.queue("list").stdout


def test_relay_from_trusted_network_is_queued(tern_factory):
    t = tern_factory(trusted_networks=["127.0.0.0/8"])
    res = swaks(t, "friend@elsewhere.example", subject="relayed")
    assert res.returncode == 0, res.stdout
    qid = queued_id_from(res)

    def attempted():
        q = parse_queue_list(t.queue("list").stdout)
        return q if qid in q and q[qid]["rcpts"][0]["attempts"] >= 1 else None
    q = wait_until(attempted, 10, what="a delivery attempt for the relayed message")
    entry = q[qid]
    assert entry["from"] == "someone@example.net"
    [rcpt] = entry["rcpts"]
    assert rcpt["to"] == "friend@elsewhere.example"
    assert rcpt["status"] == "pending"
    # Remote delivery is not implemented yet: the message stays queued with a 4xx.
    assert 'last="451 4.4.0' in rcpt["line"], rcpt["line"]


def test_forged_authentication_results_with_our_authserv_id_are_removed(tern):
    # RFC 8601 §5: a field claiming our authserv-id (default: server.hostname)
    # that arrives from outside is a forgery and must not reach the mailbox;
    # fields of other authserv-ids stay, and so does the body.
    res = swaks(tern, "alice@example.test", subject="forged A-R", extra=[
        "--add-header", "Authentication-Results: MX.example.test; spf=pass smtp.mailfrom=bank.example",
        "--add-header", "Authentication-Results: other.example; dkim=pass header.d=other.example",
        "--add-header", "Authentication-Results: mx.example.test (folded\r\n forgery); dmarc=pass",
        "--body", "Authentication-Results: mx.example.test; in the body stays"])
    assert res.returncode == 0, res.stdout + res.stderr
    [msg] = wait_for_messages(tern.maildir("alice"), 1)
    ars = [" ".join(v.split()) for v in msg.get_all("Authentication-Results", [])]
    assert ars == ["other.example; dkim=pass header.d=other.example"], ars
    assert msg["Subject"] == "forged A-R"
    assert "Authentication-Results: mx.example.test; in the body stays" in msg.get_payload()
    assert "forged_auth_results_removed" in tern.log_tail()


def test_detail_folder_delivers_into_an_existing_maildirplusplus_folder(tern_factory):
    # [delivery] detail_folder: alice+lists@ goes to .lists when it exists;
    # a detail without a folder still reaches the inbox (never auto-created).
    t = tern_factory(detail_folder=True, start=False)
    folder = os.path.join(t.maildir("alice"), ".lists")
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    t.start()
    assert swaks(t, "alice+lists@example.test", subject="to the folder").returncode == 0
    assert swaks(t, "alice+other@example.test", subject="to the inbox").returncode == 0
    [in_folder] = wait_for_messages(folder, 1)
    assert in_folder["Subject"] == "to the folder"
    inbox = wait_for_messages(t.maildir("alice"), 1)
    assert [m["Subject"] for m in inbox] == ["to the inbox"]
    assert not os.path.exists(os.path.join(t.maildir("alice"), ".other"))
