"""Package-attack generator: well over 1,000 hostile variants of real packages per run.

A few honest packages are built, then mutated where an attacker would want a change
to get through: the AES ciphertext of the signed content and of the signature, the
CBC padding, our RSA-encrypted content key, the signed content itself, the signed
attributes, the signature value and the signer's certificate (re-encrypted to the
recipient, which anyone can do with its public certificate), whole-block splices
between packages, swapped signatures, truncations, garbage and wrong signers.

Every variant must be refused with a :class:`PackageRejected` reason — none may be
accepted, and none may raise anything else. Bytes that nothing authenticates and
nothing reads (the MIME preamble, the *other* recipient's encrypted key) are not
mutated: changing them changes nothing a receiver acts on.

The seed is random per run (``STAFET_ATTACK_SEED`` to repeat one) and is in every
failure message.
"""

from __future__ import annotations

import base64
import os
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from asn1crypto import cms

from stafet.core.errors import PackageRejected
from stafet.packages.package import split_signed

SEED = int(os.environ.get("STAFET_ATTACK_SEED", random.SystemRandom().randrange(2**32)))
PER_PACKAGE = {  # variants per honest package, by kind of mutation
    "ciphertext-content": 70, "ciphertext-signature": 30, "ciphertext-tail": 15, "encrypted-key": 25,
    "content": 70, "signed-attrs": 25, "signature-value": 20, "certificate": 25, "truncate": 15,
    "splice": 8, "swap-signature": 3, "garbage": 5,
}
PACKAGES = 4


def flip(data: bytes, at: int, mask: int) -> bytes:
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1:]


@dataclass
class Honest:
    """An honest package taken apart: where each part lies in which bytes."""

    eml: bytes
    der: bytes
    entity: bytes
    ct: tuple[int, int]  # ciphertext (offset, length) in der
    key: tuple[int, int]  # our encrypted content key in der
    content: tuple[int, int]  # signed content in entity
    sig_b64: tuple[int, int]  # base64 of the signature in entity
    sig: bytes
    spans: dict[str, tuple[int, int]]  # in sig: signed attrs, signature value, certificate


def take_apart(net, eml: bytes) -> Honest:
    der = net.der_of(eml)
    env = cms.ContentInfo.load(der)["content"]
    ct_bytes = env["encrypted_content_info"]["encrypted_content"].native
    ours = net.key("uu-viborg").cert.serial_number
    key_bytes = next(ri.chosen["encrypted_key"].native for ri in env["recipient_infos"]
                     if ri.chosen["rid"].chosen["serial_number"].native == ours)
    entity = net.entity(eml)
    content, sig = split_signed(entity)
    c_at = entity.index(content)
    s_start = entity.index(b"\r\n\r\n", entity.index(b"smime.p7s")) + 4
    s_end = entity.index(b"\r\n--", s_start)
    sd = cms.ContentInfo.load(sig)["content"]
    si = sd["signer_infos"][0]
    spans = {}
    for name, part in (("signed-attrs", si["signed_attrs"]), ("signature-value", si["signature"]),
                       ("certificate", sd["certificates"][0])):
        raw = part.dump()
        spans[name] = (sig.index(raw), len(raw))
    return Honest(eml, der, entity, ct=(der.rindex(ct_bytes), len(ct_bytes)),
                  key=(der.index(key_bytes), len(key_bytes)), content=(c_at, len(content)),
                  sig_b64=(s_start, s_end - s_start), sig=sig, spans=spans)


def with_sig(h: Honest, sig: bytes) -> bytes:
    """``h``'s entity with another signature DER, base64 laid out like the original."""
    start, n = h.sig_b64
    width = len(h.entity[start:start + n].split(b"\r\n")[0])
    b64 = base64.b64encode(sig)
    body = b"\r\n".join(b64[i:i + width] for i in range(0, len(b64), width))
    return h.entity[:start] + body + h.entity[start + n:]


def variants(net, honest: list[Honest], rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """(kind, package bytes) for every hostile variant."""

    def blocks_within(span: tuple[int, int]) -> list[int]:
        # A flip in ciphertext block j garbles plaintext block j and flips a bit of block j+1:
        # keep both inside the span so the change lands in what the signature covers.
        start, n = span
        return list(range(start // 16 + 1, (start + n) // 16 - 1))

    for i, h in enumerate(honest):
        other = honest[(i + 1) % len(honest)]
        ct_at, ct_n = h.ct
        mutations: dict[str, Callable[[], bytes]] = {
            "ciphertext-content": lambda h=h, ct_at=ct_at: net.with_der(h.eml, flip(
                h.der, ct_at + 16 * rng.choice(blocks_within(h.content)) + rng.randrange(16),
                1 << rng.randrange(8))),
            "ciphertext-signature": lambda h=h, ct_at=ct_at: net.with_der(h.eml, flip(
                h.der, ct_at + 16 * rng.choice(blocks_within(h.sig_b64)) + rng.randrange(16),
                1 << rng.randrange(8))),
            "ciphertext-tail": lambda h=h, ct_at=ct_at, ct_n=ct_n: net.with_der(h.eml, flip(
                h.der, ct_at + ct_n - 1 - rng.randrange(32), rng.randrange(1, 256))),
            "encrypted-key": lambda h=h: net.with_der(h.eml, flip(
                h.der, h.key[0] + rng.randrange(h.key[1]), 1 << rng.randrange(8))),
            "content": lambda h=h: net.envelope(flip(
                h.entity, h.content[0] + rng.randrange(h.content[1]), rng.randrange(1, 256)), like=h.eml),
            "signed-attrs": lambda h=h: _sig_flip(net, h, "signed-attrs", rng),
            "signature-value": lambda h=h: _sig_flip(net, h, "signature-value", rng),
            "certificate": lambda h=h: _sig_flip(net, h, "certificate", rng),
            "truncate": lambda h=h: h.eml[:rng.randrange(len(h.eml) // 2, len(h.eml) - 12)],
            "splice": lambda h=h, other=other, ct_at=ct_at: net.with_der(h.eml, _splice(h, other, rng)),
            "swap-signature": lambda h=h, other=other: net.envelope(with_sig(h, other.sig), like=h.eml),
            "garbage": lambda h=h: net.with_der(h.eml, rng.randbytes(rng.randrange(1, 3000))),
        }
        for kind, n in PER_PACKAGE.items():
            for _ in range(n):
                data = mutations[kind]()
                if data != h.eml and (other is h or data != other.eml):  # an unchanged copy is no attack
                    yield kind, data
    for name in ("rogue", "expired", "future", "revoked", "weak"):
        yield f"signer-{name}", net.build(sender_key=net.odd(name)).eml
    yield "signer-other-member", net.build(sender_key=net.key("jobcenter-viborg")).eml
    yield "other-recipient", net.build(recipient="jobcenter-viborg").eml


# --- trust variants: revocation and key usage (issue 16, findings 4-7) ----------------------------
TRUST_PER_CASE = 3


def trust_variants(net) -> Iterator[tuple[str, Callable[[], object]]]:
    """(kind, attempt) for each trust attack; an attempt must raise a refusal.

    A back-dated signing time on an expired signer, a CRL that is forged, keyed by another
    CA of the anchor's name, missing, unreadable or stale, a delta CRL revoking the signer, a
    package encrypted to a revoked recipient, and signers whose key usage does not allow signing.
    """
    import datetime as dt

    from cryptography.x509.oid import ExtendedKeyUsageOID
    from testnet import odd_key
    from trust_crafting import CRL_CASES, backdate, issue

    from keys.trust import TrustStore
    from stafet.core.config import load_network
    from stafet.exchange.endpoints import recipient_certificate

    now = dt.datetime.now(dt.UTC)
    keys = net.keystore("uu-viborg").decryption_keys("uu-viborg")

    def opener(eml: bytes, trust=None) -> Callable[[], object]:
        from stafet.packages.package import open_package

        return lambda: open_package(eml, org_id="uu-viborg", keys=keys, trust=trust or net.trust(),
                                    members=net.members)

    for i in range(TRUST_PER_CASE):
        lapsed = odd_key(net.ca, "779008", days=10, not_before=now - dt.timedelta(days=12 + i))
        yield "backdated-expired-signer", opener(backdate(net, net.build(sender_key=lapsed).eml, lapsed,
                                                          now - dt.timedelta(days=5 + i)))
        server_auth = ExtendedKeyUsageOID.SERVER_AUTH
        for usage in ({"key_encipherment": True, "digital_signature": False, "eku": server_auth},
                      {"key_encipherment": True, "digital_signature": False},
                      {"key_encipherment": True, "eku": ExtendedKeyUsageOID.SERVER_AUTH}):
            odd = issue(net, "779008", **usage)
            yield "wrong-key-usage", opener(net.build(sender_key=odd).eml)
    crl_path = net.root / "net" / "certs" / "crl.pem"
    honest = crl_path.read_bytes()
    for case, make in CRL_CASES.items():
        data = make(net)
        if data is None:
            crl_path.unlink()
        else:
            crl_path.write_bytes(data)
        trust = TrustStore.for_network(load_network(net.network_path))
        crl_path.write_bytes(honest)
        for _ in range(TRUST_PER_CASE):
            yield f"crl-{case}", opener(net.build().eml, trust)
    # a delta CRL (RFC 5280 §5.2.4) revoking the signer that its complete CRL does not list:
    # announced or not, fresh or stale, the signer is refused (the library alone ignored some)
    from cryptography import x509
    from trust_crafting import make_crl

    ca_name, ca_key = net.ca.ca_cert().subject, net.ca.ca_key()
    signer = net.key("779008").cert
    anchors = [x509.load_pem_x509_certificate(p.read_bytes())
               for p in load_network(net.network_path).trust_anchors]
    pins = TrustStore.for_network(load_network(net.network_path)).pins
    for case, delta_kw in (("announced", {}), ("unannounced", {}),
                           ("stale", {"last": -dt.timedelta(days=3), "nxt": -dt.timedelta(days=1)})):
        extra = [(x509.FreshestCRL([x509.DistributionPoint(
            [x509.UniformResourceIdentifier("http://crl.stafet.invalid/delta.crl")], None, None, None)]),
            False)] if case == "announced" else []
        base = make_crl(ca_name, ca_key, number=10, now=now, extra=extra)
        delta = make_crl(ca_name, ca_key, [signer], number=11, now=now,
                         extra=[(x509.DeltaCRLIndicator(10), True)], **delta_kw)
        trust = TrustStore(anchors, [base, delta], pins=pins)
        for _ in range(TRUST_PER_CASE):
            yield f"delta-crl-{case}", opener(net.build().eml, trust)
    net.ca.revoke(format(net.key("uu-viborg").cert.serial_number, "x"))
    net.ca.write_crl([crl_path])
    for _ in range(TRUST_PER_CASE):
        yield "revoked-recipient", lambda: recipient_certificate(net.ctx("779008"), "uu-viborg")
    crl_path.write_bytes(honest)


# --- cross-member variants: validly signed by a member, trying to change another's data -------
CROSS_MEMBER = {"cross-member-overwrite": 40, "cross-member-withdrawal": 40}
MUTATE = {"home_municipality": ["787", "779", "000", "751"], "reason_code": ["01", "99", "A1"],
          "first_name": ["Mallory", ""], "last_name": ["X"], "note": ["flyttet", ""],
          "programme_name": ["Andet"], "institution": ["779008", "751001"]}


def _source_records():
    """What a source system said at uu-viborg's node (a dropout and a concern flag, this youth)."""
    import datetime as dt

    from stafet.core.cpr import parse_cpr
    from stafet.core.models import ConcernFlag, Dropout, Provenance

    prov = Provenance("easy-a", "779008_haendelser.csv", 2, dt.datetime.now(dt.UTC))
    day = dt.date.today() - dt.timedelta(days=2)
    common = {"cpr": parse_cpr("120308-4127"), "institution": "779008", "home_municipality": "791",
              "first_name": "Testa", "last_name": "Ungesen", "programme_code": "1640", "provenance": prov}
    return [Dropout(event_date=day, reason_code="03", **common),
            ConcernFlag(event_date=day - dt.timedelta(days=20), **common)]


def _state(ctx):
    """The source records and the routing they give: what no package may change."""
    import datetime as dt

    from sqlalchemy import select

    from stafet.duties.routing import route
    from stafet.store.schema import ImportedRecordRow, RecordRow

    with ctx.store.session() as s:
        rows = sorted((r.id, r.kind, r.natural_key, r.digest, r.withdrawn)
                      for r in s.scalars(select(RecordRow)))
        routes = sorted((d.rule, d.sender, d.recipient, d.youth, d.status, d.record_ids)
                        for d in route(s, ctx.network, dt.date.today()))
        withdrawn = sorted(r.package_id for r in s.scalars(select(ImportedRecordRow)) if r.withdrawn)
    return rows, routes, withdrawn


def _overwrite(net, rng: random.Random, sources) -> bytes:
    sender = rng.choice(["779008", "jobcenter-viborg"])
    doc = net.handover_doc(sender)
    records = []
    for src in rng.sample(sources, rng.randint(1, len(sources))):
        data = dict(src.payload())
        for name, values in MUTATE.items():
            if name in data and rng.random() < 0.6:
                data[name] = rng.choice(values)
        records.append({"kind": src.kind, "natural_key": src.natural_key(), "data": data})
    doc.update(records=records, consent_ref=rng.choice(["", "S-1", "S-2"]),
               rule=rng.choice(["dropout_to_uu", "concern_to_uu", "order_to_institution"]))
    return net.build(doc, sender=sender).eml


def _withdrawal(net, rng: random.Random, mine: str, theirs: str) -> bytes:
    """A notice that may withdraw nothing: ``mine`` came from 779008 under S-1, ``theirs`` from
    jobcenter-viborg under S-2."""
    import datetime as dt

    from stafet.packages.package import new_package_id

    case = rng.randrange(4)
    extra = [new_package_id() for _ in range(rng.randrange(2))]
    if case == 0:    # another member names 779008's package
        signer = claimed = "jobcenter-viborg"
        ids, ref = [mine], rng.choice(["S-1", "S-2", ""])
        if rng.random() < 0.5:
            ids.append(theirs)
    elif case == 1:  # 779008 names jobcenter-viborg's package
        signer, claimed, ids, ref = "779008", "779008", [theirs], rng.choice(["S-1", "S-2"])
        if rng.random() < 0.5:
            ids.insert(0, mine)
    elif case == 2:  # its own package, under a consent it did not come under
        signer, claimed, ids, ref = "779008", "779008", [mine], rng.choice(["S-2", "", "S-1 ", "s-1"])
    else:            # signed by another member than the notice's sender
        signer, claimed, ids, ref = "jobcenter-viborg", "779008", [mine], "S-1"
    rng.shuffle(ids)
    doc = {"type": "withdrawal", "package_id": new_package_id(), "sender": claimed, "recipient": "uu-viborg",
           "created": dt.datetime.now(dt.UTC).isoformat(),
           "withdrawal": {"consent_ref": ref, "package_ids": ids + extra, "instruction": "Slet"}}
    if signer == claimed:
        return net.build(doc, sender=signer).eml
    return net.craft({"schema": "stafet/1", **doc}, signer=net.key(signer), sender=claimed)


def cross_member(net, rng: random.Random) -> Iterator[tuple[str, str]]:
    """(kind, outcome) for each cross-member variant, each through uu-viborg's whole receive pass.

    ``outcome`` is the refusal's reason, ``kept-apart`` for a package received without
    changing any source record or routing, or ``accepted: …`` / ``crashed: …``.
    """
    ctx = net.ctx("uu-viborg")
    sources = _source_records()
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, sources)
    honest = {}
    for sender, ref in (("779008", "S-1"), ("jobcenter-viborg", "S-2")):
        doc = net.handover_doc(sender)
        doc.update(consent_ref=ref, rule="order_to_institution")
        net.deliver("uu-viborg", f"honest-{sender}.eml", net.build(doc, sender=sender).eml)
        honest[sender] = doc["package_id"]
    assert net.receive().imported == 2
    before = _state(ctx)
    assert before[1] and not before[2], "the test network routes the source records, nothing is withdrawn"
    for kind, n in CROSS_MEMBER.items():
        for i in range(n):
            name = f"{kind}-{i:03d}.eml"
            data = (_overwrite(net, rng, sources) if kind == "cross-member-overwrite"
                    else _withdrawal(net, rng, honest["779008"], honest["jobcenter-viborg"]))
            net.deliver("uu-viborg", name, data)
            try:
                result = net.receive()
            except Exception as e:
                yield kind, f"crashed: {type(e).__name__}: {traceback.format_exc()[-1500:]}"
                continue
            if _state(ctx) != before:
                yield kind, f"accepted: changed source records, routing or another's package ({name})"
                before = _state(ctx)
            elif kind == "cross-member-withdrawal" and name not in result.rejected:
                yield kind, f"accepted: a notice that may withdraw nothing was not refused ({name})"
            else:
                yield kind, result.rejected.get(name, "kept-apart")


def _sig_flip(net, h: Honest, span: str, rng: random.Random) -> bytes:
    at, n = h.spans[span]
    return net.envelope(with_sig(h, flip(h.sig, at + rng.randrange(n), 1 << rng.randrange(8))), like=h.eml)


def _splice(h: Honest, other: Honest, rng: random.Random) -> bytes:
    """Ciphertext blocks of another package (another content key) pasted over ours."""
    (at, n), (o_at, o_n) = h.ct, other.ct
    j = rng.randrange(1, min(n, o_n) // 16 - 4)
    k = rng.randrange(1, 4)
    return h.der[:at + 16 * j] + other.der[o_at + 16 * j:o_at + 16 * (j + k)] + h.der[at + 16 * (j + k):]


@pytest.fixture
def honest(net) -> list[Honest]:
    return [take_apart(net, net.build().eml) for _ in range(PACKAGES)]


def test_no_hostile_variant_is_accepted(net, honest):
    rng = random.Random(SEED)
    for h in honest:  # the honest ones pass: the refusals below are not the receiver being broken
        assert net.open(h.eml).digest
    keys = net.keystore("uu-viborg").decryption_keys("uu-viborg")
    trust, members = net.trust(), net.members
    from stafet.packages.package import open_package

    reasons: Counter[tuple[str, str]] = Counter()
    accepted, crashed = [], []
    started = time.monotonic()
    total = 0
    for kind, data in variants(net, honest, rng):
        total += 1
        try:
            open_package(data, org_id="uu-viborg", keys=keys, trust=trust, members=members)
        except PackageRejected as e:
            reasons[(kind, e.reason)] += 1
            continue
        except Exception as e:
            crashed.append((kind, f"{type(e).__name__}: {e}"[:200] + traceback.format_exc()[-1500:]))
            continue
        accepted.append(kind)
    from stafet.core.errors import DeliveryFailed

    for kind, attempt in trust_variants(net):
        total += 1
        try:
            attempt()
        except (PackageRejected, DeliveryFailed) as e:
            reasons[(kind, getattr(e, "reason", None) or type(e).__name__)] += 1
            continue
        except Exception as e:
            crashed.append((kind, f"{type(e).__name__}: {e}"[:200] + traceback.format_exc()[-1500:]))
            continue
        accepted.append(kind)
    # Validly signed by a member, so no cryptography refuses them: what they may change is the test.
    for kind, outcome in cross_member(net, rng):
        total += 1
        if outcome.startswith("accepted"):
            accepted.append(f"{kind}: {outcome}")
        elif outcome.startswith("crashed"):
            crashed.append((kind, outcome))
        else:
            reasons[(kind, outcome)] += 1
    elapsed = time.monotonic() - started
    print(f"\n{total} hostile variants in {elapsed:.1f}s (seed {SEED}):")
    for (kind, reason), n in sorted(reasons.items()):
        print(f"  {kind:22} {reason:16} {n}")
    assert total >= 1000
    assert not crashed, f"seed {SEED}: not refused cleanly: {crashed[:5]}"
    assert not accepted, f"seed {SEED}: accepted: {Counter(accepted)}"


def test_hostile_variants_are_kept_in_rejected_by_the_receive_pass(net, honest):
    """A sample through the whole receive pass: nothing imported, each kept with its reason."""
    rng = random.Random(SEED + 1)
    sample = [(kind, data) for kind, data in variants(net, honest[:2], rng)][::17]
    for i, (_, data) in enumerate(sample):
        net.deliver("uu-viborg", f"hostile-{i:03d}.eml", data)
    result = net.receive()
    kinds = {f"hostile-{i:03d}.eml": kind for i, (kind, _) in enumerate(sample)}
    assert result.imported == 0, f"seed {SEED}: {sorted(set(kinds) - set(result.rejected))} " \
        f"{[kinds[n] for n in set(kinds) - set(result.rejected)]}"
    assert len(result.rejected) == len(sample)
    kept = net.home("uu-viborg") / "rejected"
    for name, reason in result.rejected.items():
        assert f"[{reason}]" in (kept / f"{name}.reason.txt").read_text()
