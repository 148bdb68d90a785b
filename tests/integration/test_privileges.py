"""tern binds its ports as root, then drops to [server] user: the running
process has no root privileges left, its data directory belongs to that
user, and mail still flows (queue and Maildir written as that user)."""
import os
import pwd

from conftest import require_binary  # noqa: F401  (shared fixtures live in conftest)
from ternlib import TernServer, wait_for_messages
from test_mx_delivery import swaks


def proc_ids(pid):
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                ids[key] = value.split()
    return ids


def test_drops_root_to_configured_user(world_readable_tmp, tls_material):
    if os.geteuid() != 0:
        import pytest
        pytest.fail("this test needs root (it checks the privilege drop)")
    nobody = pwd.getpwnam("nobody")
    cert, key = tls_material
    server = TernServer(world_readable_tmp, cert=cert, key=key, user="nobody")
    # The operator makes the account/alias files and the mail root readable
    # (writable) by the unprivileged user, as with any MTA.
    os.makedirs(server.mail_root, exist_ok=True)
    for path in (server.accounts_path, server.aliases_path, server.mail_root):
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    server.start()
    try:
        ids = proc_ids(server.proc.pid)
        assert ids["Uid"] == [str(nobody.pw_uid)] * 4, ids
        assert ids["Gid"] == [str(nobody.pw_gid)] * 4, ids
        assert ids["Groups"] == [], ids
        assert "event=privileges user=nobody" in server.log_text()
        res = swaks(server, "alice@example.test", subject="as nobody")
        assert res.returncode == 0, res.stdout + res.stderr
        [msg] = wait_for_messages(server.maildir("alice"), 1)
        assert msg["Subject"] == "as nobody"
        st = os.stat(os.path.join(server.data_dir, "queue"))
        assert st.st_uid == nobody.pw_uid
        delivered = os.listdir(os.path.join(server.maildir("alice"), "new"))
        assert os.stat(os.path.join(server.maildir("alice"), "new", delivered[0])).st_uid == nobody.pw_uid
    finally:
        assert server.stop() == 0, server.log_tail()
