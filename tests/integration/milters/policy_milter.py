#!/usr/bin/python3
"""A small real milter (python3-milter, i.e. libmilter) for tern's milter tests.

It decides by the recipient's local part, so one running instance can play
every role a test needs:
  reject*      -> 550 5.7.1 at RCPT (custom reply via setreply)
  tempfail*    -> plain TEMPFAIL at RCPT
  discard*     -> DISCARD at end of message
  addheader*   -> adds X-Test-Milter at end of message
  redirect*    -> deletes that recipient, adds <archive@example.test>
  chgfrom*     -> changes the envelope sender to <bounces@example.test>
  rewrite*     -> prefixes Subject with "[tagged] " and replaces the body
  quarantine*  -> quarantines the message with a reason
Every accepted message also gets X-Milter-Seen with the macros and counts the
milter received (j, {client_addr}, i, {mail_addr}, header count, body
bytes), so the MTA side's framing can be checked.

Usage: policy_milter.py SOCKET_PATH   (a Unix socket path; removed first)
"""
import sys

import Milter


class PolicyMilter(Milter.Base):
    def __init__(self):
        self.reset()

    def reset(self):
        self.sender = None
        self.recipients = []
        self.headers = 0
        self.subject = None
        self.body_bytes = 0

    def connect(self, hostname, family, hostaddr):
        self.client = hostaddr
        return Milter.CONTINUE

    def envfrom(self, sender, *params):
        self.reset()
        self.sender = sender
        self.params = params
        return Milter.CONTINUE

    def envrcpt(self, to, *params):
        local = to.strip('<>').split('@')[0].lower()
        if local.startswith('reject'):
            self.setreply('550', '5.7.1', 'rejected by test milter')
            return Milter.REJECT
        if local.startswith('tempfail'):
            return Milter.TEMPFAIL
        self.recipients.append((to, local))
        return Milter.CONTINUE

    def header(self, name, value):
        self.headers += 1
        if name.lower() == 'subject':
            self.subject = value
        return Milter.CONTINUE

    def body(self, chunk):
        self.body_bytes += len(chunk)
        return Milter.CONTINUE

    def eom(self):
        locals_ = [local for _, local in self.recipients]
        if any(l.startswith('discard') for l in locals_):
            return Milter.DISCARD
        seen = 'j=%s; client_addr=%s; i=%s; mail_addr=%s; headers=%d; body=%d' % (
            self.getsymval('j'), self.getsymval('{client_addr}'), self.getsymval('i'),
            self.getsymval('{mail_addr}'), self.headers, self.body_bytes)
        self.addheader('X-Milter-Seen', seen)
        for to, local in self.recipients:
            if local.startswith('addheader'):
                self.addheader('X-Test-Milter', 'seen %s' % to)
            if local.startswith('redirect'):
                self.delrcpt(to)
                self.addrcpt('<archive@example.test>')
            if local.startswith('chgfrom'):
                self.chgfrom('<bounces@example.test>')
            if local.startswith('rewrite'):
                self.chgheader('Subject', 1, '[tagged] %s' % (self.subject or ''))
                self.replacebody(b'replaced by the milter\r\n')
            if local.startswith('quarantine'):
                self.quarantine('held for review')
        return Milter.ACCEPT

    def abort(self):
        self.reset()
        return Milter.CONTINUE


def main():
    socket_path = sys.argv[1]
    Milter.factory = PolicyMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY | Milter.ADDRCPT | Milter.DELRCPT |
                     Milter.CHGFROM | Milter.QUARANTINE)
    sys.stdout.write('starting\n')
    sys.stdout.flush()
    Milter.runmilter('tern-test-milter', 'unix:' + socket_path, 60)


if __name__ == '__main__':
    main()
