"""Protocol features on raw sockets: BDAT/CHUNKING (RFC 3030), DSN
parameters (RFC 3461) as the queue records them, and the small commands
VRFY, HELP, NOOP and RSET (RFC 5321 §4.1.1)."""

import subprocess

from ternlib import TERN_BIN, RawSmtp, queued_id, wait_for_messages


def greet(t):
    c = RawSmtp(t.addr("mx"))
    assert c.reply()[0] == 220
    return c


def test_bdat_multi_chunk(tern):
    c = greet(tern)
    assert "CHUNKING" in c.ehlo()
    assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    chunks = [
        b"From: sender@example.net\r\nSubject: bdat test\r\n\r\nline one\r\n",
        b".a line with a leading dot, not stuffed in BDAT\r\nsplit ac",
        b"ross chunks\r\n",
    ]
    for chunk in chunks[:2]:
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        code, lines = c.reply()
        assert code == 250, (code, lines)
    # The last chunk and LAST pipelined with a following NOOP.
    c.send(b"BDAT %d LAST\r\n" % len(chunks[2]) + chunks[2] + b"NOOP\r\n")
    text = c.reply_text()
    assert text.startswith("250 2.0.0") and queued_id(text), text
    assert c.reply()[0] == 250  # the NOOP
    # A zero-length LAST chunk ends a second message.
    assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
    body = b"Subject: second\r\n\r\nx\r\n"
    c.send(b"BDAT %d\r\n" % len(body) + body)
    assert c.reply()[0] == 250
    c.send(b"BDAT 0 LAST\r\n")
    assert c.reply_text().startswith("250 2.0.0")
    c.cmd("QUIT")
    c.close()
    [msg] = wait_for_messages(tern.maildir("alice"), 1)
    assert msg["Subject"] == "bdat test"
    # (the email parser turns line ends into "\n")
    assert msg.get_payload() == "line one\n.a line with a leading dot, not stuffed in BDAT\nsplit across chunks\n"
    [second] = wait_for_messages(tern.maildir("bob"), 1)
    assert second["Subject"] == "second"


def queue_dsn_message(t):
    """Queues a relayed message with every DSN parameter, holds it, returns
    the `tern queue show` output split into (envelope part, content)."""
    c = greet(t)
    assert "DSN" in c.ehlo()
    assert c.cmd("MAIL FROM:<sender@example.net> RET=HDRS ENVID=QQ314159")[0] == 250
    # ORCPT is xtext (RFC 3461 §4): "+2B" is "+".
    code, lines = c.cmd("RCPT TO:<friend@elsewhere.example> NOTIFY=SUCCESS,FAILURE "
                        "ORCPT=rfc822;first+2Borig@elsewhere.example")
    assert code == 250, lines
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: with dsn\r\n\r\nbody\r\n.\r\n")
    qid = queued_id(c.reply_text())
    assert qid
    c.cmd("QUIT")
    c.close()
    assert t.queue("hold", qid).stdout.strip() == qid + ": held"
    show = t.queue("show", qid).stdout
    envelope, _, content = show.partition("\n\n")
    assert envelope.startswith(qid) and "HELD" in envelope.splitlines()[0], show
    return envelope, content


def test_dsn_parameters_are_accepted_and_queued(tern_factory):
    t = tern_factory(trusted_networks=["127.0.0.0/8"])
    envelope, content = queue_dsn_message(t)
    assert "from=<sender@example.net>" in envelope
    assert "to=<friend@elsewhere.example>" in envelope
    assert "envid=QQ314159" in envelope
    assert "Subject: with dsn" in content
    assert "by mx.example.test (tern) with ESMTP" in " ".join(content.split())


def test_queue_show_displays_dsn_parameters(tern_factory):
    # The spool stores RET, NOTIFY and ORCPT (docs/spool-format.md); an
    # operator must be able to see them.
    t = tern_factory(trusted_networks=["127.0.0.0/8"])
    envelope, _ = queue_dsn_message(t)
    assert "HDRS" in envelope, "RET=HDRS not shown by `tern queue show`:\n" + envelope
    assert "SUCCESS" in envelope and "FAILURE" in envelope, "NOTIFY not shown:\n" + envelope
    assert "first+orig@elsewhere.example" in envelope, "ORCPT not shown:\n" + envelope


def test_vrfy_help_noop_rset(tern):
    c = greet(tern)
    c.ehlo()
    code, lines = c.cmd("VRFY alice@example.test")
    assert code == 252 and lines[0].startswith("2.1.5"), lines
    assert c.cmd("HELP")[0] == 214
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("RSET")[0] == 250
    # RSET cleared the transaction (RFC 5321 §4.1.1.5).
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 503
    assert c.cmd("DATA")[0] == 503
    assert c.cmd("QUIT")[0] == 221
    assert c.closed_by_peer()
    c.close()
    assert "queue is empty" in tern.queue("list").stdout


def test_quit_reply_then_close_also_with_a_command_pipelined_after_it(tern):
    """After QUIT the 221 goes out with the FIN in one segment (MSG_MORE,
    then close). A client that pipelines something after QUIT must still get
    its 221 (that path sends the reply on its own first), and then EOF."""
    c = greet(tern)
    c.ehlo()
    assert c.cmd("QUIT") == (221, ["2.0.0 Bye"])
    assert c.closed_by_peer()
    c.close()
    c = greet(tern)
    c.ehlo()
    c.send(b"QUIT\r\nNOOP\r\n")
    assert c.reply()[0] == 221
    assert c.closed_by_peer()
    assert c.buf == b"", c.buf  # nothing after the 221: the NOOP was not answered
    c.close()


def test_second_server_on_the_same_port_fails_to_start(tern_factory):
    """Each event-loop thread has its own SO_REUSEPORT listening socket; a
    second server (another data directory, same port) must not join that
    group and take a share of the connections: it exits with an error."""
    first = tern_factory(listeners=("mx",))
    second = tern_factory(name="second", listeners=("mx",), start=False)
    with open(second.config_path) as f:
        config = f.read()
    config = config.replace("127.0.0.1:%d" % second.ports["mx"], "127.0.0.1:%d" % first.ports["mx"])
    with open(second.config_path, "w") as f:
        f.write(config)
    res = subprocess.run([TERN_BIN, "serve", "--config", second.config_path], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode != 0, res.stderr
    assert "Address already in use" in res.stderr + res.stdout, res.stderr
    # The first server still answers every connection.
    for _ in range(10):
        c = greet(first)
        c.close()
