"""The security suite reuses the integration harness (tests/integration): its fixtures are
loaded from there under another module name, so both suites can run in one pytest session."""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.abspath(os.path.join(HERE, "..", "integration"))
sys.path.insert(0, INTEGRATION)

_spec = importlib.util.spec_from_file_location("moat_integration_conftest",
                                               os.path.join(INTEGRATION, "conftest.py"))
_it = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_it)

pytest_configure = _it.pytest_configure
certs = _it.certs
broker_factory = _it.broker_factory
broker = _it.broker
moat_factory = _it.moat_factory
moat = _it.moat
clients = _it.clients
wires = _it.wires
subs = _it.subs
