"""Scripted SMTP peers for outbound delivery tests: an aiosmtpd server on a
loopback address (any 127.0.0.x, port 25 by default; tests run as root) that
records every transaction and answers RCPT by the recipient's local part:
"defer..." gets 450 4.2.1, "reject..." gets 550 5.1.1, anything else 250.
Use as a context manager; `transactions` holds (mail_from, rcpt_tos,
content bytes) tuples in arrival order."""
import threading

from aiosmtpd.controller import Controller


class RecordingHandler:
    def __init__(self):
        self.transactions = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("defer"):
            return "450 4.2.1 mailbox busy, try later"
        if local.startswith("reject"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.transactions.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 2.0.0 accepted"


class SmtpPeer:
    def __init__(self, host, port=25):
        self.handler = RecordingHandler()
        self.controller = Controller(self.handler, hostname=host, port=port, server_hostname="peer." + host)

    @property
    def transactions(self):
        with self.handler.lock:
            return list(self.handler.transactions)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()
