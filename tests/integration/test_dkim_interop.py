"""DKIM interoperability with dkimpy (python3-dkim), both ways, both algorithms.

200 generated messages (8-bit bytes, UTF-8, 900-octet lines, folded headers
with tabs, empty bodies, trailing blank lines and whitespace, many header
fields, repeated headers) are

  (a) signed by dkimpy (rsa-sha256 and ed25519-sha256, all four
      canonicalization pairs in turn) and verified by tern, and
  (b) signed by tern (relaxed/relaxed by default, the other pairs in turn)
      and verified by dkimpy.

Every one of the 200 x 2 directions x 2 algorithms must pass. tern is driven
through the test-only `dkim_tool` (tests/unit/auth/dkim_tool.cc; set DKIM_TOOL
or build it into build/tests/unit/auth/); it also generates the keys, so
tern's keygen output is checked against dkimpy as well. No network is used:
keys are served from a map file (tern) and a dnsfunc (dkimpy).
"""

import base64
import os
import random
import subprocess

import dkim  # python3-dkim: required, never skipped
import pytest


HERE = os.path.dirname(os.path.abspath(__file__))
DKIM_TOOL = os.environ.get("DKIM_TOOL") or os.path.join(HERE, "..", "..", "build", "tests", "unit", "auth", "dkim_tool")
MESSAGES = 200
DOMAIN = "interop.example"
CANONS = [(b"relaxed", b"relaxed"), (b"simple", b"simple"), (b"relaxed", b"simple"), (b"simple", b"relaxed")]


def tool(*args):
    if not os.access(DKIM_TOOL, os.X_OK):
        pytest.fail("dkim_tool not found at %s: build target dkim_tool or set DKIM_TOOL" % DKIM_TOOL)
    return subprocess.run([DKIM_TOOL] + list(args), capture_output=True, timeout=300)


WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "caf\u00e9", "na\u00efve", "\u65e5\u672c", "stra\u00dfe", "x", "--",
         "=?utf-8?q?enc?=", "a\tb", "(comment)", "<angle>", "\"quoted\""]


def words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_message(i):
    """A varied but SMTP-legal message (CRLF line ends, lines < 1000 octets)."""
    rng = random.Random(1000 + i)
    h = []
    if rng.random() < 0.3:
        for k in range(rng.randint(1, 4)):
            h.append("Received: from relay%d.example by mx.example with ESMTP id %d;\r\n\tMon, 13 Nov 2023 10:0%d:00 +0000"
                     % (k, rng.randint(1, 10 ** 9), k))
    h.append("From: %s <sender%d@%s>" % (rng.choice(["Alice", "\"Bob, Jr.\"", "Ren\u00e9e", "=?utf-8?b?w6k=?="]), i, DOMAIN))
    h.append("To: rcpt%d@example.org" % i + (",\r\n\tother@example.net" if rng.random() < 0.3 else ""))
    if rng.random() < 0.5:
        h.append("Cc: cc@example.com")
    subj = words(rng, rng.randint(0, 30))
    if rng.random() < 0.4:
        # Folded subject with spaces and tabs around the fold.
        subj = subj.replace(" ", "\r\n " if rng.random() < 0.5 else " \r\n\t", 2)
    h.append("Subject: " + subj)
    h.append("Date: Mon, 13 Nov 2023 10:%02d:00 +0000" % (i % 60))
    h.append("Message-ID: <%d.%d@%s>" % (i, rng.randint(0, 10 ** 6), DOMAIN))
    h.append("MIME-Version: 1.0")
    h.append("Content-Type: text/plain; charset=%s" % rng.choice(["utf-8", "iso-8859-1", "\"utf-8\""]))
    h.append("Content-Transfer-Encoding: 8bit")
    for k in range(rng.choice([0, 0, 2, 10, 40])):
        h.append("X-Header-%d:%s%s" % (k, rng.choice([" ", "\t", "  ", ""]), words(rng, rng.randint(0, 5))))
    if rng.random() < 0.2:
        h.append("X-Spaces:    lots   of \t  space   ")

    kind = rng.choice(["empty", "trailing", "long", "eightbit", "normal", "normal", "ws", "nofinal"])
    lines = []
    if kind != "empty":
        for _ in range(rng.randint(1, 40)):
            r = rng.random()
            if kind == "long" and r < 0.3:
                lines.append("L" * 900)
            elif r < 0.1:
                lines.append("")
            elif kind == "ws" and r < 0.5:
                lines.append(rng.choice(["  ", "\t", " a  b\t\tc  ", "trailing  \t"]))
            else:
                lines.append(words(rng, rng.randint(1, 14)))
        if kind == "trailing":
            lines += [""] * rng.randint(1, 5)
    body = "\r\n".join(lines)
    if kind != "nofinal" and lines:
        body += "\r\n"
    head = "\r\n".join(h) + "\r\n"
    data = (head + "\r\n" + body).encode("utf-8")
    if kind == "eightbit":
        data += bytes(range(0x80, 0x100)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n\xff\xfe latin1 \xe9\r\n"
    return data


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkimkeys")
    out = {}
    for alg, typ in (("rsa-sha256", "rsa"), ("ed25519-sha256", "ed25519")):
        prefix = str(d / typ)
        r = tool("keygen", "--type", typ, "--bits", "2048", "--out", prefix)
        assert r.returncode == 0, r.stderr.decode()
        txt = open(prefix + ".txt", "rb").read().strip()
        if typ == "rsa":
            dkimpy_key = open(prefix + ".pem", "rb").read()
        else:
            dkimpy_key = open(prefix + ".seed", "rb").read().strip()
            assert len(base64.b64decode(dkimpy_key)) == 32
        out[alg] = {"selector": "sel-" + typ, "pem": prefix + ".pem", "txt": txt, "dkimpy_key": dkimpy_key}
    return out


@pytest.fixture(scope="module")
def messages():
    return [make_message(i) for i in range(MESSAGES)]


def dnsfunc_for(keys):
    records = {("%s._domainkey.%s" % (k["selector"], DOMAIN)).encode(): k["txt"] for k in keys.values()}

    def dnsfunc(name, timeout=5):
        return records.get(name.rstrip(b"."))
    return dnsfunc


def dns_map_file(keys, path):
    with open(path, "wb") as f:
        for k in keys.values():
            f.write(b"%s._domainkey.%s TXT %s\n" % (k["selector"].encode(), DOMAIN.encode(), k["txt"]))


@pytest.mark.parametrize("alg", ["rsa-sha256", "ed25519-sha256"])
def test_dkimpy_signs_tern_verifies(alg, keys, messages, tmp_path):
    k = keys[alg]
    files = []
    for i, msg in enumerate(messages):
        canon = CANONS[i % len(CANONS)]
        sig = dkim.sign(msg, k["selector"].encode(), DOMAIN.encode(), k["dkimpy_key"],
                        signature_algorithm=alg.encode(), canonicalize=canon,
                        include_headers=[b"from", b"to", b"cc", b"subject", b"date", b"message-id",
                                         b"content-type", b"mime-version", b"x-header-1", b"x-spaces"])
        p = tmp_path / ("m%03d.eml" % i)
        p.write_bytes(sig + msg)
        files.append(str(p))
        # dkimpy agrees with itself (sanity check of the harness).
        assert dkim.verify(sig + msg, dnsfunc=dnsfunc_for(keys)), "dkimpy self-check failed on message %d" % i
    dns_map_file(keys, tmp_path / "dns.txt")
    r = tool("verify", "--dns", str(tmp_path / "dns.txt"), *files)
    out = r.stdout.decode("utf-8", "replace").splitlines()
    passed = [line for line in out if line.split(" ")[1:2] == ["pass"]]
    bad = [line for line in out if line.split(" ")[1:2] != ["pass"]]
    print("dkimpy -> tern (%s): %d/%d pass" % (alg, len(passed), len(files)))
    assert not bad, "tern rejected dkimpy signatures:\n" + "\n".join(bad[:20])
    assert len(passed) == len(files) and r.returncode == 0


@pytest.mark.parametrize("alg", ["rsa-sha256", "ed25519-sha256"])
def test_tern_signs_dkimpy_verifies(alg, keys, messages, tmp_path):
    k = keys[alg]
    groups = {}
    for i, msg in enumerate(messages):
        p = tmp_path / ("m%03d.eml" % i)
        p.write_bytes(msg)
        # Relaxed/relaxed (tern's default) for half of them, the other pairs for the rest.
        canon = CANONS[0] if i % 2 == 0 else CANONS[(i // 2) % len(CANONS)]
        groups.setdefault(canon, []).append(str(p))
    for canon, files in groups.items():
        r = tool("sign", "--key", k["pem"], "--domain", DOMAIN, "--selector", k["selector"],
                 "--canon", b"/".join(canon).decode(), *files)
        assert r.returncode == 0, r.stderr.decode()
    dnsfunc = dnsfunc_for(keys)
    failures = []
    for i in range(len(messages)):
        signed = (tmp_path / ("m%03d.eml.signed" % i)).read_bytes()
        assert signed.startswith(b"DKIM-Signature: v=1; a=" + alg.encode())
        assert signed.endswith(messages[i])
        if not dkim.verify(signed, dnsfunc=dnsfunc):
            failures.append(i)
    print("tern -> dkimpy (%s): %d/%d pass" % (alg, len(messages) - len(failures), len(messages)))
    assert not failures, "dkimpy rejected tern signatures on messages %s" % failures[:20]
