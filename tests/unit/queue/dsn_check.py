#!/usr/bin/python3
# Reads a DSN produced by tern (src/queue/dsn.cc) with Python's standard
# `email` package and prints what it found as key=value lines, so that the
# C++ unit test (dsn_test.cc) can assert the values an independent MIME
# parser sees. It also checks the structure itself and exits non-zero on a
# violation: CRLF line ends only, no line over 998 octets (RFC 5322 §2.1.1),
# no parser defects, multipart/report with three (or two) parts in the order
# of RFC 6522 §3, and, for message/delivery-status, that Python's own block
# parser agrees with the field-by-field reading below (RFC 3464 §2.1).
#
# Usage: dsn_check.py FILE
import email
import email.parser
import email.policy
import email.utils
import sys


def fail(why):
    print("error=" + why)
    sys.exit(1)


def out(key, value):
    text = str(value).replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
    print(f"{key}={text}")


def split_parts(raw, boundary):
    # RFC 2046 §5.1.1: the CRLF before a delimiter belongs to the delimiter.
    delimiter = b"\r\n--" + boundary.encode()
    segments = raw.split(delimiter)
    if len(segments) < 3 or not segments[-1].startswith(b"--"):
        fail("missing parts or close delimiter")
    parts = []
    for seg in segments[1:-1]:
        if not seg.startswith(b"\r\n"):
            fail("delimiter line has trailing text")
        head, sep, body = seg[2:].partition(b"\r\n\r\n")
        if not sep:
            fail("body part without a blank line after its header")
        parts.append((head, body))
    return parts


def parse_fields(block):
    parser = email.parser.BytesParser(policy=email.policy.default)
    msg = parser.parsebytes(block + b"\r\n\r\n", headersonly=True)
    fields = [(name, str(value)) for name, value in msg.items()]
    names = [name.lower() for name, _ in fields]
    if len(set(names)) != len(names):
        fail("a DSN field appears twice in one group")
    return fields


def main():
    raw = open(sys.argv[1], "rb").read()
    if b"\n" in raw.replace(b"\r\n", b"") or b"\r" in raw.replace(b"\r\n", b""):
        fail("bare CR or LF")
    out("max_line", max(len(line) for line in raw.split(b"\r\n")))
    if any(len(line) > 998 for line in raw.split(b"\r\n")):
        fail("line longer than 998 octets")

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    defects = sum(len(part.defects) for part in msg.walk())
    out("defects", defects)
    for name in ("From", "To", "Subject", "Message-ID", "Auto-Submitted", "MIME-Version"):
        out(name.lower(), msg[name])
    out("date_epoch", int(email.utils.parsedate_to_datetime(msg["Date"]).timestamp()))
    out("content_type", msg.get_content_type())
    out("report_type", msg.get_param("report-type"))
    out("top_cte", msg.get("Content-Transfer-Encoding", ""))
    if msg.get_content_type() != "multipart/report":
        fail("not multipart/report")

    py_parts = list(msg.iter_parts())
    parts = split_parts(raw, msg.get_boundary())
    if len(parts) != len(py_parts):
        fail("python and delimiter split disagree on the number of parts")
    out("parts", len(parts))
    for i, part in enumerate(py_parts, 1):
        out(f"part{i}.type", part.get_content_type())
        out(f"part{i}.cte", part.get("Content-Transfer-Encoding", ""))
        out(f"part{i}.charset", part.get_param("charset") or "")

    text = py_parts[0]
    if text.get_content_type() != "text/plain":
        fail("first part is not text/plain")
    out("text", text.get_content())

    status_type = py_parts[1].get_content_type()
    if status_type not in ("message/delivery-status", "message/global-delivery-status"):
        fail("second part is not a delivery status")
    blocks = [b for b in parts[1][1].split(b"\r\n\r\n")]
    if blocks and blocks[-1] == b"":
        blocks.pop()
    per_message = parse_fields(blocks[0])
    for name, value in per_message:
        out("msg." + name, value)
    recipients = [parse_fields(b) for b in blocks[1:]]
    out("recipients", len(recipients))
    for i, fields in enumerate(recipients):
        for name, value in fields:
            out(f"rcpt{i}.{name}", value)
    if status_type == "message/delivery-status":
        # Python parses this type itself into one Message per block.
        own = [[(n, str(v)) for n, v in block.items()] for block in py_parts[1].get_payload()]
        if own != [per_message] + recipients:
            fail("python's delivery-status blocks differ: %r" % (own,))

    if len(parts) >= 3:
        head, body = parts[2]
        returned = email.parser.BytesParser(policy=email.policy.default).parsebytes(body)
        out("returned.subject", returned["Subject"])
        out("returned.message_id", returned["Message-ID"])
        payload = returned.get_payload(decode=True) or b""
        out("returned.body", payload.decode("utf-8", "replace"))


if __name__ == "__main__":
    main()
