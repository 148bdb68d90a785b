"""pytest fixtures for tern's integration tests.

`tern_factory(**options)` creates and starts a TernServer (see ternlib.py) in
the test's temporary directory; `tern` is one started with the default
options (local domains example.test and other.test, accounts alice, bob and
carol, aliases, mx + submission + submissions listeners with a self-signed
certificate, no trusted networks). At teardown every server still running
gets SIGTERM and must exit with status 0; when a test fails, the tail of each
server's log is attached to the report.
"""

import os
import shutil
import tempfile

import pytest

import ternlib


def pytest_configure(config):
    if not os.access(ternlib.TERN_BIN, os.X_OK):
        raise pytest.UsageError("tern binary not found at %s: build it or set TERN_BIN" % ternlib.TERN_BIN)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item._tern_call_report = report
    if report.failed:
        for server in getattr(item, "_tern_servers", []):
            report.sections.append(("tern log: " + server.root, server.log_tail(80)))


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory):
    return ternlib.make_self_signed_cert(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture
def tern_factory(request, tmp_path, tls_material):
    servers = []
    request.node._tern_servers = servers
    # Sockets and Maildirs are reached by other uids (Dovecot, Postfix).
    os.chmod(tmp_path, 0o755)

    def make(name="tern", start=True, tls=True, **options):
        cert, key = tls_material if tls else (None, None)
        server = ternlib.TernServer(str(tmp_path), name=name, cert=cert, key=key, **options)
        servers.append(server)
        if start:
            server.start()
        return server

    yield make
    problems = []
    for server in servers:
        rc = server.stop()
        codes = [c for c in server.exit_codes if c != 0]
        if codes:
            problems.append("%s: exit status after SIGTERM %r\n%s" % (server.root, codes, server.log_tail(80)))
    if problems:
        pytest.fail("tern did not stop cleanly:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def world_readable_tmp(request):
    """A temporary directory other uids can reach (pytest's tmp_path sits
    under a 0700 directory): for Postfix and Dovecot, which drop root.
    Kept when the test fails, for post-mortem."""
    path = tempfile.mkdtemp(prefix="tern-it-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    report = getattr(request.node, "_tern_call_report", None)
    if report is not None and report.failed:
        print("kept " + path)
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tern(tern_factory):
    return tern_factory()


def require_binary(path):
    if shutil.which(path) is None and not os.access(path, os.X_OK):
        pytest.fail("%s is not installed (see the Makefile's PACKAGES)" % path)
