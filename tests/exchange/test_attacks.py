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
