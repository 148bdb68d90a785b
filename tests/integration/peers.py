"""Scripted SMTP peers for outbound delivery tests: an aiosmtpd server on a
loopback address (any 127.0.0.x, port 25 by default; tests run as root) that
records every transaction and answers RCPT by the recipient's local part:
"defer..." gets 450 4.2.1, "reject..." gets 550 5.1.1, anything else 250.
Use as a context manager; `transactions` holds (mail_from, rcpt_tos,
content bytes) tuples in arrival order.

Options for misbehaving or limited receivers (the defaults keep the plain
behaviour above): `dsn=True` announces the DSN extension (RFC 3461) and
accepts RET/ENVID on MAIL and NOTIFY/ORCPT on RCPT (aiosmtpd alone answers
555 to them); `smtputf8=False` leaves SMTPUTF8 out of the EHLO reply;
`on_data` replaces the 250 after the content: "drop" closes the connection
without a reply, any other string is sent as the reply; either way the
transaction is not recorded as delivered. `data_delay` seconds pass before
the final reply (a slow server); `close_after_data=True` closes the
connection right after a 250 to the content (a server that does not keep
connections open for the next transaction). `rcpt_replies` maps
local-part prefixes to RCPT replies that take precedence over the handler's;
a 421 among them also closes the connection (RFC 5321 §3.8).

Besides `transactions`: `connections` counts the connections accepted,
`open_connections` those not closed yet (by either side),
`commands` holds every MAIL and RCPT command line as received (parameters
in their original case), and `envelopes` the transactions accepted with
250, each {"mail_from", "mail_params": {RET, ENVID}, "rcpts": {address:
{NOTIFY, ORCPT}}} (DSN parameters as sent, only when `dsn=True`)."""
import asyncio
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

DSN_MAIL_PARAMS = ("RET", "ENVID")
DSN_RCPT_PARAMS = ("NOTIFY", "ORCPT")


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


def split_params(arg, names):
    """Splits the parameters `names` (case-insensitive keywords) off a MAIL or
    RCPT argument: (argument without them, {KEYWORD: value as sent})."""
    kept, taken = [], {}
    for i, token in enumerate(arg.split(" ")):
        key, _, value = token.partition("=")
        if i > 0 and key.upper() in names:
            taken[key.upper()] = value
        else:
            kept.append(token)
    return " ".join(kept), taken


class ScriptedSmtp(SMTP):
    """aiosmtpd's SMTP session with the peer's scripted options applied."""

    def __init__(self, handler, peer, **kwargs):
        super().__init__(handler, **kwargs)
        self.peer = peer

    def connection_made(self, transport):
        with self.peer.lock:
            self.peer.connection_count += 1
        super().connection_made(transport)

    def connection_lost(self, error):
        with self.peer.lock:
            self.peer.closed_count += 1
        super().connection_lost(error)

    def _record(self, verb, arg):
        with self.peer.lock:
            self.peer.command_log.append("%s %s" % (verb, arg))

    async def _call_handler_hook(self, command, *args):
        if command == "DATA" and "DATA" in self._handle_hooks:
            return await self.peer.finish_data(self, self._handle_hooks["DATA"])
        return await super()._call_handler_hook(command, *args)

    async def smtp_EHLO(self, hostname):
        if not self.peer.dsn:
            return await super().smtp_EHLO(hostname)
        # Insert "250-DSN" before the last line of aiosmtpd's reply.
        pushed = []
        original_push = self.push

        async def collect(status):
            pushed.append(status)
        self.push = collect
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self.push = original_push
        if len(pushed) > 1:
            pushed.insert(len(pushed) - 1, "250-DSN")
        for line in pushed:
            await self.push(line)

    async def smtp_MAIL(self, arg):
        if arg is not None:
            self._record("MAIL", arg)
        dsn_params = {}
        if self.peer.dsn and arg is not None:
            arg, dsn_params = split_params(arg, DSN_MAIL_PARAMS)
        await super().smtp_MAIL(arg)
        self.envelope.dsn_mail = dsn_params
        if not hasattr(self.envelope, "dsn_rcpts"):
            self.envelope.dsn_rcpts = {}

    async def smtp_RCPT(self, arg):
        if arg is not None:
            self._record("RCPT", arg)
        dsn_params = {}
        if self.peer.dsn and arg is not None:
            arg, dsn_params = split_params(arg, DSN_RCPT_PARAMS)
        scripted = self.peer.scripted_rcpt_reply(arg)
        if scripted is not None and self.envelope.mail_from:
            await self.push(scripted)
            if scripted.startswith("421"):
                self.transport.close()
            return
        before = len(self.envelope.rcpt_tos)
        await super().smtp_RCPT(arg)
        if len(self.envelope.rcpt_tos) > before:
            if not hasattr(self.envelope, "dsn_rcpts"):
                self.envelope.dsn_rcpts = {}
            self.envelope.dsn_rcpts[self.envelope.rcpt_tos[-1]] = dsn_params


class ScriptedController(Controller):
    def __init__(self, peer, handler, **kwargs):
        self.peer = peer
        super().__init__(handler, **kwargs)

    def factory(self):
        return ScriptedSmtp(self.handler, self.peer, **self.SMTP_kwargs)


class SmtpPeer:
    def __init__(self, host, port=25, dsn=False, smtputf8=True, on_data=None, data_delay=0.0,
                 close_after_data=False, rcpt_replies=None):
        self.dsn = dsn
        self.rcpt_replies = dict(rcpt_replies or {})
        self.close_after_data = close_after_data
        self.on_data = on_data
        self.data_delay = data_delay
        self.lock = threading.Lock()
        self.command_log = []
        self.envelope_log = []
        self.connection_count = 0
        self.closed_count = 0
        self.handler = RecordingHandler()
        self.controller = ScriptedController(self, self.handler, hostname=host, port=port,
                                             server_hostname="peer." + host, enable_SMTPUTF8=smtputf8)

    def scripted_rcpt_reply(self, arg):
        """The rcpt_replies entry for a RCPT argument ("TO:<local@domain> ..."), or None."""
        if not arg or not self.rcpt_replies:
            return None
        start = arg.find("<")
        local = arg[start + 1:].split("@", 1)[0].lower() if start >= 0 else ""
        for prefix, reply in self.rcpt_replies.items():
            if local.startswith(prefix):
                return reply
        return None

    async def finish_data(self, server, handle_data):
        """The end of DATA: data_delay, then on_data or the handler's reply."""
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.on_data == "drop":
            server.transport.abort()
            return "421 4.4.2 (never sent: the connection is dropped)"
        if self.on_data:
            return self.on_data
        envelope = server.envelope
        status = await handle_data(server, server.session, envelope)
        if isinstance(status, str) and status.startswith("250"):
            dsn_rcpts = getattr(envelope, "dsn_rcpts", {})
            with self.lock:
                self.envelope_log.append({
                    "mail_from": envelope.mail_from,
                    "mail_params": dict(getattr(envelope, "dsn_mail", {})),
                    "rcpts": {r: dict(dsn_rcpts.get(r, {})) for r in envelope.rcpt_tos},
                })
            if self.close_after_data:
                # After the reply has been written (push() follows this hook).
                asyncio.get_running_loop().call_later(0.05, server.transport.close)
        return status

    @property
    def transactions(self):
        with self.handler.lock:
            return list(self.handler.transactions)

    @property
    def envelopes(self):
        with self.lock:
            return list(self.envelope_log)

    @property
    def connections(self):
        with self.lock:
            return self.connection_count

    @property
    def open_connections(self):
        with self.lock:
            return self.connection_count - self.closed_count

    @property
    def commands(self):
        with self.lock:
            return list(self.command_log)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()
