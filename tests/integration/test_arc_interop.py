"""ARC interoperability with dkimpy (python3-dkim), both ways.

For a few dozen varied messages (folded and repeated headers, 8-bit bodies,
long lines, empty bodies, trailing blank lines):

  (a) tern seals (i=1) and dkimpy's arc_verify says cv=pass;
  (b) dkimpy's arc_sign seals (i=1) and tern validates the chain as pass;
  (c) mixed chains: dkimpy i=1 then tern i=2 (verified by dkimpy), and tern
      i=1 then dkimpy i=2 (verified by tern);
  (d) a body modified after sealing fails in both verifiers.

RSA-SHA256 only: dkimpy does not verify Ed25519 ARC seals (tern's Ed25519
sealing is covered by tests/unit/auth/arc_test.cc). tern is driven through
the test-only `arc_tool` (tests/unit/auth/arc_tool.cc; set ARC_TOOL or build
it into build/tests/unit/auth/). No network: keys are served from a map file
(tern) and a dnsfunc (dkimpy).
"""

import base64
import os
import random
import subprocess

import dkim  # python3-dkim: required, never skipped
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = os.path.dirname(os.path.abspath(__file__))
ARC_TOOL = os.environ.get("ARC_TOOL") or os.path.join(HERE, "..", "..", "build", "tests", "unit", "auth", "arc_tool")
MESSAGES = 30
TERN = (b"tern-sel", b"tern.example", b"mx.tern.example")
PY = (b"py-sel", b"py.example", b"lists.py.example")


def tool(*args):
    if not os.access(ARC_TOOL, os.X_OK):
        pytest.fail("arc_tool not found at %s: build target arc_tool or set ARC_TOOL" % ARC_TOOL)
    return subprocess.run([ARC_TOOL] + [str(a) for a in args], capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("arc")
    out = {}
    records = {}
    for sel, dom, _ in (TERN, PY):
        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption())
        spki = k.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
        name = sel + b"._domainkey." + dom
        records[name] = b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki)
        path = d / (dom.decode() + ".pem")
        path.write_bytes(pem)
        out[dom] = (pem, str(path))
    dns_map = d / "dns.txt"
    dns_map.write_bytes(b"".join(n + b" TXT " + v + b"\n" for n, v in records.items()))
    out["dns"] = str(dns_map)
    out["records"] = records
    out["dir"] = d
    return out


def dnsfunc_for(records):
    def dnsfunc(name, timeout=5):
        return records.get(name.rstrip(b"."), b"")
    return dnsfunc


WORDS = ["lorem", "ipsum", "caf\u00e9", "\u65e5\u672c", "stra\u00dfe", "x", "--", "(c)", "<a>", "\"q\""]


def make_message(i, authserv, arc_result):
    rng = random.Random(7000 + i)
    h = ["Authentication-Results: %s; arc=%s;\r\n\tspf=pass smtp.mailfrom=sender%d@origin.example;\r\n"
         "\tdkim=pass header.d=origin.example" % (authserv, arc_result, i)]
    for k in range(rng.randint(0, 3)):
        h.append("Received: from relay%d.example by mx.example;\r\n\tMon, 13 Nov 2023 10:0%d:00 +0000" % (k, k))
    h.append("From: %s <sender%d@origin.example>" % (rng.choice(["Alice", "\"Bob, Jr.\"", "Ren\u00e9e"]), i))
    h.append("To: list@lists.example" + (",\r\n  other@example.net" if rng.random() < 0.4 else ""))
    h.append("Subject: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))))
    h.append("Date: Mon, 13 Nov 2023 10:00:%02d +0000" % (i % 60))
    h.append("Message-ID: <%d.arc@origin.example>" % i)
    if rng.random() < 0.5:
        h.append("MIME-Version: 1.0")
        h.append("Content-Type: text/plain; charset=utf-8")
    if rng.random() < 0.3:
        h.append("X-Dup: one")
        h.append("X-Dup:   two  ")
    kind = i % 5
    if kind == 0:
        body = ""
    elif kind == 1:
        body = "x" * 900 + "\r\n" + "short line\r\n"
    elif kind == 2:
        body = "trailing blanks  \r\n\r\n\r\n\r\n"
    elif kind == 3:
        body = "".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 15))) + "\r\n"
                       for _ in range(rng.randint(1, 40)))
    else:
        body = "no final newline\ttabs  and   spaces"
    return ("\r\n".join(h) + "\r\n\r\n" + body).encode("utf-8")


def py_seal(msg, keys, arc_result_hop):
    sel, dom, srv = PY
    pem, _ = keys[dom]
    hdrs = dkim.arc_sign(msg, sel, dom, pem, srv, include_headers=[b"from", b"to", b"subject", b"date",
                                                                     b"message-id"])
    assert hdrs, "dkimpy produced no ARC set"
    return b"".join(hdrs) + msg


def tern_seal(msg, keys, path):
    sel, dom, srv = TERN
    _, keyfile = keys[dom]
    path.write_bytes(msg)
    r = tool("seal", "--dns", keys["dns"], "--key", keyfile, "--domain", dom.decode(), "--selector", sel.decode(),
             "--authserv-id", srv.decode(), str(path))
    assert r.returncode == 0, r.stderr.decode()
    return (path.parent / (path.name + ".sealed")).read_bytes()


def tern_verify(msg, keys, path):
    path.write_bytes(msg)
    r = tool("verify", "--dns", keys["dns"], str(path))
    return r.returncode, r.stdout.decode()


def py_verify(msg, keys):
    cv, _, reason = dkim.arc_verify(msg, dnsfunc=dnsfunc_for(keys["records"]))
    return cv, reason


def test_tern_seals_dkimpy_verifies(keys):
    d = keys["dir"]
    for i in range(MESSAGES):
        msg = make_message(i, TERN[2].decode(), "none")
        sealed = tern_seal(msg, keys, d / ("t%d.eml" % i))
        cv, reason = py_verify(sealed, keys)
        assert cv == b"pass", "message %d: dkimpy says %s (%s)" % (i, cv, reason)
        code, out = tern_verify(sealed, keys, d / ("t%d.check" % i))
        assert code == 0, out


def test_dkimpy_seals_tern_verifies(keys):
    d = keys["dir"]
    for i in range(MESSAGES):
        msg = make_message(i, PY[2].decode(), "none")
        sealed = py_seal(msg, keys, "none")
        code, out = tern_verify(sealed, keys, d / ("p%d.eml" % i))
        assert code == 0, "message %d: tern says %s" % (i, out)
        assert " pass " in out


def test_mixed_chains(keys):
    d = keys["dir"]
    for i in range(0, MESSAGES, 3):
        # dkimpy i=1, tern i=2 (tern validates i=1 itself to choose cv=pass), dkimpy verifies.
        msg = make_message(i, PY[2].decode(), "none")
        hop1 = py_seal(msg, keys, "none")
        hop1 = ("Authentication-Results: %s; arc=pass\r\n" % TERN[2].decode()).encode() + hop1
        hop2 = tern_seal(hop1, keys, d / ("m%d.eml" % i))
        assert b"i=2;" in hop2 and b"cv=pass" in hop2
        cv, reason = py_verify(hop2, keys)
        assert cv == b"pass", "message %d: dkimpy says %s (%s)" % (i, cv, reason)
        # tern i=1, dkimpy i=2, tern verifies.
        msg = make_message(i, TERN[2].decode(), "none")
        t1 = tern_seal(msg, keys, d / ("n%d.eml" % i))
        t1 = ("Authentication-Results: %s; arc=pass\r\n" % PY[2].decode()).encode() + t1
        p2 = py_seal(t1, keys, "pass")
        code, out = tern_verify(p2, keys, d / ("n%d.check" % i))
        assert code == 0, "message %d: tern says %s" % (i, out)


def test_modified_body_fails_both(keys):
    d = keys["dir"]
    msg = make_message(3, TERN[2].decode(), "none")
    sealed = tern_seal(msg, keys, d / "mod.eml") + b"appended by a broken list\r\n"
    cv, _ = py_verify(sealed, keys)
    assert cv == b"fail"
    code, out = tern_verify(sealed, keys, d / "mod.check")
    assert code == 1 and " fail " in out
