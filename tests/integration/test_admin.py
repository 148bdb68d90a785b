"""Operator commands against the real binary: `tern config check` error
reporting, `tern queue ...` on a server under load, and queue durability
across a graceful restart."""

import signal
import smtplib
import subprocess
import threading

from ternlib import TERN_BIN, RawSmtp, make_message, wait_for_messages, wait_until

REMOTE = "friend@elsewhere.example"


def test_config_check_accepts_good_config(tern_factory):
    t = tern_factory(start=False)
    res = t.run_cli(["config", "check"], check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == t.config_path + ": ok"


def write_config_with(t, extra_lines):
    """Appends lines to the server's config; returns (path, first appended line number)."""
    with open(t.config_path) as f:
        base = f.read().rstrip("\n").split("\n")
    path = t.config_path + ".bad"
    with open(path, "w") as f:
        f.write("\n".join(base + extra_lines) + "\n")
    return path, len(base) + 1


def config_check(path):
    return subprocess.run([TERN_BIN, "config", "check", "--config", path], capture_output=True, text=True,
                          timeout=10)


def test_config_check_unknown_key_names_file_line_and_key(tern_factory):
    t = tern_factory(start=False)
    path, line = write_config_with(t, ["[limits]", "max_recipients = 10", "max_bogus_things = 3"])
    res = config_check(path)
    assert res.returncode == 1
    assert "%s:%d: limits.max_bogus_things: unknown key" % (path, line + 2) in res.stderr, res.stderr


def test_config_check_bad_value_names_file_line_and_key(tern_factory):
    t = tern_factory(start=False)
    path, line = write_config_with(t, ["[limits]", "", "max_recipients = 0"])
    res = config_check(path)
    assert res.returncode == 1
    assert "%s:%d: limits.max_recipients: must be between" % (path, line + 2) in res.stderr, res.stderr
    path, line = write_config_with(t, ["[limits]", 'timeout_command = "soon"'])
    res = config_check(path)
    assert res.returncode == 1
    assert "%s:%d: limits.timeout_command:" % (path, line + 1) in res.stderr, res.stderr


def send_relayed(t, count, results, tag, sessions=2):
    """Sends `count` relayed messages over `sessions` connections; records queue ids."""
    def worker(start):
        s = smtplib.SMTP("127.0.0.1", t.ports["mx"], local_hostname="busy.example.net", timeout=30)
        for i in range(start, count, sessions):
            subject = "%s %d" % (tag, i)
            s.sendmail("sender@example.net", [REMOTE], make_message(subject, to=REMOTE).encode())
            results.append(subject)
        s.quit()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(sessions)]
    for th in threads:
        th.start()
    return threads


def test_queue_commands_on_busy_server(tern_factory):
    t = tern_factory(trusted_networks=["127.0.0.0/8"])
    sent = []
    threads = send_relayed(t, 200, sent, "busy")
    try:
        q = wait_until(lambda: (lambda q: q if len(q) >= 10 else None)(t.queue_list()), 20,
                       what="10 queued messages")
        ids = sorted(q)
        sent_at_first_command = len(sent)
        held, deleted, shown = ids[0], ids[1], ids[2]
        # hold
        assert t.queue("hold", held).stdout == held + ": held\n"
        assert t.queue_list()[held]["held"]
        # show prints the envelope, then the content
        show = t.queue("show", shown).stdout
        header, _, content = show.partition("\n\n")
        assert header.startswith(shown + "  size=") and "from=<sender@example.net>" in header
        assert "to=<%s>" % REMOTE in header
        assert "client=127.0.0.1 helo=busy.example.net protocol=ESMTP" in header
        assert content.startswith("Received: from busy.example.net")
        assert "Subject: busy " in content
        # delete
        assert t.queue("delete", deleted).stdout == deleted + ": deleted\n"
        assert deleted not in t.queue_list()
        gone = t.queue("show", deleted, check=False)
        assert gone.returncode == 1 and gone.stderr
        # release
        assert t.queue("release", held).stdout == held + ": released\n"
        assert not t.queue_list()[held]["held"]
        # unknown id
        bad = t.queue("hold", "nosuchid", check=False)
        assert bad.returncode == 1
        # Keep listing while the load runs: every snapshot must be well formed.
        snapshots = 0
        while any(th.is_alive() for th in threads):
            for entry in t.queue_list().values():
                assert entry["from"] == "sender@example.net"
                assert [r["to"] for r in entry["rcpts"]] == [REMOTE]
            snapshots += 1
    finally:
        for th in threads:
            th.join(60)
    assert len(sent) == 200
    print("busy queue: first command after %d of 200 messages, %d list snapshots during the load"
          % (sent_at_first_command, snapshots))
    # Every message except the deleted one is queued and has had its first
    # (failing: no remote delivery yet) attempt.
    def all_attempted():
        q = t.queue_list()
        return q if len(q) == 199 and all(m["rcpts"][0]["attempts"] >= 1 for m in q.values()) else None
    q = wait_until(all_attempted, 30, interval=0.2, what="199 queued messages each attempted once")
    assert deleted not in q
    # flush makes every pending recipient due now: a second attempt follows.
    assert "flushed" in t.queue("flush").stdout
    wait_until(lambda: all(m["rcpts"][0]["attempts"] >= 2 for m in t.queue_list().values()), 30, interval=0.2,
               what="a second attempt for every message after flush")


def test_queue_survives_graceful_restart(tern_factory):
    t = tern_factory(trusted_networks=["127.0.0.0/8"])
    sent = []
    for th in send_relayed(t, 6, sent, "durable", sessions=1):
        th.join(30)
    before = wait_until(lambda: (lambda q: q if len(q) == 6 and all(m["rcpts"][0]["attempts"] >= 1
                                                                     for m in q.values()) else None)(
        t.queue_list()), 15, what="6 attempted messages")
    held = sorted(before)[0]
    t.queue("hold", held)
    assert t.stop() == 0
    t.start()
    after = t.queue_list()
    assert sorted(after) == sorted(before)
    for qid, entry in before.items():
        assert after[qid]["from"] == entry["from"]
        assert after[qid]["rcpts"][0]["to"] == REMOTE
        assert after[qid]["rcpts"][0]["attempts"] >= entry["rcpts"][0]["attempts"]
        assert after[qid]["rcpts"][0]["attempts"] >= 1
    assert after[held]["held"], "hold state lost across restart"
    assert "Subject: durable " in t.queue("show", held).stdout


def test_sigterm_closes_idle_sessions_and_lets_data_finish(tern):
    idle = RawSmtp(tern.addr())
    assert idle.reply()[0] == 220
    idle.ehlo()
    busy = RawSmtp(tern.addr())
    assert busy.reply()[0] == 220
    busy.ehlo()
    assert busy.cmd("MAIL FROM:<sender@example.net>")[0] == 250
    assert busy.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert busy.cmd("DATA")[0] == 354
    busy.send("Subject: finishing during shutdown\r\n\r\nfirst half\r\n")
    tern.proc.send_signal(signal.SIGTERM)
    # The idle session is told at once (RFC 5321 §3.8).
    assert idle.reply_text().startswith("421 4.3.2"), "idle session not closed with 421"
    assert idle.closed_by_peer()
    # The session in DATA may finish its message, which is accepted.
    busy.send("second half\r\n.\r\n")
    assert busy.reply_text().startswith("250 2.0.0")
    assert busy.cmd("NOOP")[0] == 421 or busy.closed_by_peer()
    assert tern.stop() == 0
    # Acknowledged means kept: delivered before the exit, or after a restart.
    tern.start()
    [msg] = wait_for_messages(tern.maildir("alice"), 1)
    assert msg["Subject"] == "finishing during shutdown"
    assert msg.get_payload() == "first half\nsecond half\n"
