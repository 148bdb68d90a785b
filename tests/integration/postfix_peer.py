"""Real next hops for tern's outbound transport tests: a private Postfix
(configuration, queue and log under one directory, its own loopback port,
never the system instance) that relays everything it accepts on to a fixed
host, optionally as a submission server (STARTTLS required, SASL AUTH through
a private Dovecot's auth socket), and that private Dovecot, which serves only
authentication from a passwd-file. Used by test_transports.py; the sink
behind Postfix is an aiosmtpd peer from peers.py, so a test can read the
envelope and the exact bytes Postfix passed on."""

import os
import shutil
import smtplib
import subprocess

from dovecot_peer import DOVECOT, Dovecot, read_tail  # noqa: F401 (DOVECOT re-exported for the tests)
from ternlib import client_tls_context, free_port, wait_until

POSTFIX = "/usr/sbin/postfix"


class DovecotAuth(Dovecot):
    """`dovecot -F` with no mail protocols: only the auth service, whose
    client socket Postfix's smtpd uses for SASL (smtpd_sasl_type = dovecot).
    `users` maps user names to plain-text passwords."""

    def __init__(self, root, users):
        os.makedirs(root, exist_ok=True)
        passwd = os.path.join(root, "passwd")
        with open(passwd, "w") as f:
            for user, password in users.items():
                f.write("%s:{PLAIN}%s::::::\n" % (user, password))
        os.chmod(passwd, 0o644)  # read by the auth worker, which runs as dovecot
        super().__init__(root, "auth", "postfix-auth", [
            "protocols = none",
            "auth_verbose = yes",
            "auth_mechanisms = plain login",
            "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN %s\n}" % passwd,
            "userdb {\n  driver = static\n  args = uid=65534 gid=65534 home=/nonexistent\n}",
            # Postfix's smtpd (uid postfix) connects to this socket.
            "service auth {\n  unix_listener postfix-auth {\n    mode = 0666\n  }\n}",
        ])


class RelayingPostfix:
    """A Postfix instance under `root` listening on 127.0.0.1:`port` (a free
    port by default) that accepts mail and relays all of it to `relayhost`
    ("[127.0.0.1]:2525"): no local domains, no DNS. As a plain smarthost it
    accepts from 127.0.0.0/8; as a submission server (`submission_auth_socket`
    and `cert`/`key` given) it requires STARTTLS and SASL AUTH and relays only
    for authenticated clients, noting the user in its Received header. With
    `implicit_tls` it speaks TLS from the first byte (smtpd_tls_wrappermode,
    the port 465 "submissions" service of RFC 8314)."""

    def __init__(self, root, relayhost, port=None, hostname="relay.example.net", submission_auth_socket=None,
                 cert=None, key=None, implicit_tls=False):
        self.root = root
        self.config_dir = os.path.join(root, "etc")
        self.queue_dir = os.path.join(root, "spool")
        self.data_dir = os.path.join(root, "data")
        self.log = os.path.join(root, "maillog")
        self.port = port or free_port()
        self.hostname = hostname
        self.implicit_tls = implicit_tls
        assert submission_auth_socket or not implicit_tls, "implicit TLS is for a submission server"
        for d in (self.config_dir, self.queue_dir, self.data_dir):
            os.makedirs(d, exist_ok=True)
        shutil.copy("/etc/postfix/main.cf", self.config_dir)
        shutil.copy("/etc/postfix/master.cf", self.config_dir)
        shutil.chown(self.data_dir, "postfix")
        settings = {
            "queue_directory": self.queue_dir,
            "data_directory": self.data_dir,
            "maillog_file": self.log,
            "maillog_file_prefixes": root,  # a log outside /var must be allowed explicitly
            "syslog_name": "postfix-tern-transport",
            "myhostname": hostname,
            "mydomain": "example.net",
            "myorigin": "example.net",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "relayhost": relayhost,
            "smtp_dns_support_level": "disabled",
            "smtp_tls_security_level": "none",
            "alias_maps": "",
            "alias_database": "",
            "compatibility_level": "3.6",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks reject",
            "smtpd_tls_security_level": "none",
        }
        if submission_auth_socket:
            assert cert and key, "a submission server needs a certificate"
            tls_dir = os.path.join(root, "tls")
            os.makedirs(tls_dir, exist_ok=True)
            own_cert = shutil.copy(cert, os.path.join(tls_dir, "cert.pem"))
            own_key = shutil.copy(key, os.path.join(tls_dir, "key.pem"))
            os.chmod(own_key, 0o600)
            settings.update({
                # RFC 6409 §4.3 / RFC 3207: no mail and no AUTH without TLS.
                "smtpd_tls_security_level": "encrypt",
                "smtpd_tls_cert_file": own_cert,
                "smtpd_tls_key_file": own_key,
                "smtpd_tls_auth_only": "yes",
                "smtpd_sasl_auth_enable": "yes",
                "smtpd_sasl_type": "dovecot",
                "smtpd_sasl_path": submission_auth_socket,
                "smtpd_sasl_authenticated_header": "yes",
                "smtpd_relay_restrictions": "permit_sasl_authenticated reject",
                "smtpd_recipient_restrictions": "permit_sasl_authenticated reject",
            })
        self.postconf(["-e"] + ["%s=%s" % kv for kv in settings.items()])
        # Its own port instead of 25; no chroot (the queue directory is private
        # and the SASL socket lies outside it).
        self.postconf(["-M#", "smtp/inet"])
        wrapper = " -o smtpd_tls_wrappermode=yes" if implicit_tls else ""
        self.postconf(["-M", "%d/inet=%d inet n - n - - smtpd%s" % (self.port, self.port, wrapper)])
        self.postconf(["-F", "*/*/chroot=n"])

    def postconf(self, args):
        subprocess.run(["postconf", "-c", self.config_dir] + args, check=True, capture_output=True, text=True)

    def postfix(self, *args, check=True):
        res = subprocess.run([POSTFIX, "-c", self.config_dir] + list(args), capture_output=True, text=True,
                             timeout=60)
        if check and res.returncode != 0:
            raise AssertionError("postfix %s failed: %s%s\n%s" % (" ".join(args), res.stdout, res.stderr,
                                                                  self.log_tail()))
        return res

    def log_text(self):
        return read_tail(self.log, 10000, "")

    def log_tail(self, lines=60):
        return read_tail(self.log, lines, "(no Postfix log)")

    def start(self):
        self.postfix("check", check=False)  # creates the queue directories
        self.postfix("start")

        def greets():
            try:
                if self.implicit_tls:
                    client = smtplib.SMTP_SSL("127.0.0.1", self.port, timeout=2, context=client_tls_context())
                else:
                    client = smtplib.SMTP("127.0.0.1", self.port, timeout=2)
                with client as s:
                    return s.noop()[0] == 250
            except (OSError, smtplib.SMTPException):
                return False
        wait_until(greets, 20, interval=0.2, what="private Postfix on port %d" % self.port)
        return self

    def stop(self):
        self.postfix("stop", check=False)
