"""A private dnsmasq on a free loopback port serving test records (TXT, MX,
A, PTR), for tests that exercise tern's real DNS path (libunbound). Unknown
names under the served zones get NXDOMAIN (--local), not REFUSED; names under
a zone given to servfail() get SERVFAIL (a broken authoritative server)."""
import os
import socket
import subprocess
import threading
import time

from ternlib import free_port

DNSMASQ = "/usr/sbin/dnsmasq"


def txt_strings(text):
    """dnsmasq wants TXT data over 255 octets as several strings, separated
    by commas (given without a shell, quotes would be kept literally)."""
    assert "," not in text, "dnsmasq cannot serve a comma inside a TXT string: %r" % text
    parts = [text[i:i + 255] for i in range(0, len(text), 255)] or [""]
    return ",".join(parts)


class DnsServer:
    def __init__(self, root, zones=("test",)):
        self.root = root
        self.port = free_port()
        self.zones = zones
        self.args = []
        self.proc = None

    def txt(self, name, text):
        self.args.append("--txt-record=%s,%s" % (name, txt_strings(text)))
        return self

    def mx(self, domain, host, pref=10):
        self.args.append("--mx-host=%s,%s,%d" % (domain, host, pref))
        return self

    def host(self, name, ip):
        self.args.append("--host-record=%s,%s" % (name, ip))
        return self

    def ptr(self, revname, target):
        self.args.append("--ptr-record=%s,%s" % (revname, target))
        return self

    def servfail(self, zone):
        """Every name under `zone` answers SERVFAIL: dnsmasq forwards the zone
        to a responder that fails every query."""
        responder = _ServfailResponder()
        self.responders = getattr(self, "responders", []) + [responder]
        self.args.append("--server=/%s/127.0.0.1#%d" % (zone, responder.port))
        return self

    @property
    def address(self):
        return "127.0.0.1@%d" % self.port

    def start(self):
        if not os.access(DNSMASQ, os.X_OK):
            import pytest
            pytest.fail("dnsmasq is not installed (Debian package dnsmasq-base)")
        log = open(os.path.join(self.root, "dnsmasq-%d.log" % self.port), "wb")
        cmd = [DNSMASQ, "--no-daemon", "--port=%d" % self.port, "--listen-address=127.0.0.1",
               "--bind-interfaces", "--no-resolv", "--no-hosts", "--log-queries"]
        cmd += ["--local=/%s/" % z for z in self.zones] + ["--local=/127.in-addr.arpa/"] + self.args
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("dnsmasq exited: %s" % open(log.name).read())
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", self.port))
            except OSError:
                return self  # dnsmasq holds the port: it is up
            finally:
                s.close()
            time.sleep(0.05)
        raise AssertionError("dnsmasq did not start")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None
        for responder in getattr(self, "responders", []):
            responder.close()


class _ServfailResponder:
    """A UDP DNS server on a free loopback port answering every query with
    SERVFAIL (RFC 1035 §4.1.1: RCODE 2), the question echoed."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                query, peer = self.sock.recvfrom(4096)
            except OSError:
                return  # closed
            if len(query) < 12:
                continue
            end = 12  # the question: QNAME labels, then QTYPE and QCLASS
            while end < len(query) and query[end] != 0:
                end += 1 + query[end]
            end += 5
            flags = bytes([0x80 | (query[2] & 0x79), 0x80 | 2])  # QR, opcode and RD kept; RA; SERVFAIL
            answer = query[:2] + flags + b"\x00\x01" + b"\x00" * 6 + query[12:end]
            try:
                self.sock.sendto(answer, peer)
            except OSError:
                return

    def close(self):
        self.sock.close()
