"""Fixtures: a session-wide PKI, a Mosquitto per test, a `moat run` per test (built from a
dict merged over the default config), and client factories that are torn down with the test."""

import fcntl
import os
import resource
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import moat_harness as h  # noqa: E402


def pytest_configure(config):
    # The concurrency test needs more than the usual 1024 descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@pytest.fixture(scope="session")
def certs():
    # gen_certs.sh is idempotent: sessions (one per file under ctest) share one set instead
    # of paying for key generation each time. The lock keeps a concurrent run from reading a
    # half-replaced set.
    d = os.environ.get("MOAT_IT_CERTS_DIR") or os.path.join(
        tempfile.gettempdir(), "moat-it-certs-%d" % os.getuid())
    os.makedirs(d, exist_ok=True)
    with open(d + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return h.Certs(d)


@pytest.fixture
def broker_factory(tmp_path):
    started = []

    def make(**kw):
        d = tmp_path / ("broker%d" % len(started))
        d.mkdir()
        b = h.Mosquitto(str(d), **kw)
        started.append(b)
        return b.start()

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


@pytest.fixture
def moat_factory(tmp_path, certs, broker):
    """moat_factory(overrides=None, tls=None, listener=None, broker=None, start=True)."""
    started = []

    def make(overrides=None, tls=None, listener=None, broker_=None, start=True,
             extra_listeners=None):
        d = tmp_path / ("moat%d" % len(started))
        d.mkdir()
        target = broker_ or broker
        m = h.Moat(str(d), certs, target.port, overrides, tls, listener, extra_listeners)
        started.append(m)
        return m.start() if start else m

    yield make
    failures = []
    for m in started:
        if m.proc is None:
            continue
        if m.proc.poll() is None:
            try:
                m.stop(expect_status=0)
            except AssertionError as e:
                failures.append(str(e))
            finally:
                m.kill()
        elif m.proc.returncode not in (0, None) and not getattr(m, "expected_exit", False):
            failures.append("moat exited %d during the test; stderr:\n%s"
                            % (m.proc.returncode, m.stderr()))
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture
def moat(moat_factory):
    return moat_factory()


@pytest.fixture
def clients():
    """clients(moat, **kw) -> PahoClient; every client is closed at teardown."""
    made = []

    def make(moat_, **kw):
        c = h.PahoClient(moat_, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def wires():
    """wires(moat, **kw) -> WireClient; closed at teardown."""
    made = []

    def make(moat_, **kw):
        w = moat_.wire(**kw)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def subs():
    made = []

    def make(moat_, *a, **kw):
        s = h.MosquittoSub(moat_, *a, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()

