"""A send pass checks the recipients' certificates against one trust store.

Working out whether the trust's files changed stats every member certificate and every
cached CRL and OCSP answer (:func:`stafet.exchange.endpoints._trust_key`); a pass does it
once (:func:`~stafet.exchange.endpoints.one_trust`), not once a package. A CRL rewritten
during the pass is used from the next pass on; outside a pass every call looks again.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pytest
from trust_crafting import ca_crl

from stafet.exchange import endpoints
from stafet.exchange.outbox import send_pending

_spec = importlib.util.spec_from_file_location("receipts_roundtrip",
                                               Path(__file__).with_name("test_receipts_roundtrip.py"))
assert _spec and _spec.loader
_rt = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
if not hasattr(_rt, "plan"):
    _spec.loader.exec_module(_rt)
SENDER, RECEIVER, plan = _rt.SENDER, _rt.RECEIVER, _rt.plan


@pytest.fixture
def looks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How often the trust's files are looked at."""
    calls: list[int] = []
    real = endpoints._trust_key

    def counting(ctx):
        calls.append(1)
        return real(ctx)
    monkeypatch.setattr(endpoints, "_trust_key", counting)
    return calls


def test_a_send_pass_looks_at_the_trust_files_once_for_all_its_packages(net, looks):
    for reason in ("a", "b", "c"):
        plan(net, reason=reason)
    looks.clear()
    sent = send_pending(net.ctx(SENDER))
    assert sent.sent == 3 and sent.failed == 0
    assert len(looks) == 1              # one look for three packages (was one per package and recipient)
    endpoints.recipient_certificate(net.ctx(SENDER), RECEIVER)
    endpoints.recipient_certificate(net.ctx(SENDER), RECEIVER)
    assert len(looks) == 3              # outside a pass, each call looks again


def test_inside_a_pass_a_rewritten_crl_waits_for_the_next_pass(net):
    ctx = net.ctx(SENDER)
    crl = net.root / "net" / "certs" / "crl.pem"
    with endpoints.one_trust(ctx) as pinned:
        assert endpoints.trust_store(ctx) is pinned
        crl.write_bytes(ca_crl(net, last=-dt.timedelta(minutes=1), nxt=dt.timedelta(days=2)))
        assert endpoints.trust_store(ctx) is pinned          # the pass's store
        assert endpoints.trust_store(net.ctx(RECEIVER)) is not pinned  # another org's context looks
    assert endpoints.trust_store(ctx) is not pinned          # the next pass sees the new CRL


def test_a_receive_pass_looks_at_the_trust_files_once_for_its_packages_and_receipts(net, looks):
    from stafet.exchange.inbox import process_inbox

    for reason in ("a", "b", "c"):
        plan(net, reason=reason)
    assert send_pending(net.ctx(SENDER)).sent == 3
    looks.clear()
    result = process_inbox(net.ctx(RECEIVER), RECEIVER)
    assert result.imported == 3 and result.receipts_sent == 3
    assert len(looks) == 1              # the packages and the three receipts back: one look
