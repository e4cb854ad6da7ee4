"""Open a run of incoming packages on every core.

Opening a package (:func:`stafet.packages.package.open_package`: decrypt, verify, check) costs
one RSA private-key operation and about a millisecond of parsing that holds Python's
GIL; processes sidestep it (two workers measured 1.76× one process). When an inbox
holds enough packages, :func:`open_all` opens them in worker processes while the
caller imports, answers and files the ones already opened, in the inbox's order.
Below :data:`MIN_PER_WORKER` packages per worker it opens them in-process: a spawned
worker costs about half a second to start.

The workers are pure: bytes in, an :class:`~stafet.packages.package.Opened` or a
:class:`~stafet.core.errors.PackageRejected` out. Everything with an effect — the store,
receipts, moving files — stays with the caller, in the order the outbox pattern
needs, so a crash of the caller or a worker changes nothing the next pass cannot
redo. The workers are the caller's own children, a :class:`stafet.core.workers.Pool`:
the organisation's decryption keys reach them over the pool's private pipe (never
through a file), and they exit when the parent is gone (SIGKILL included).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from keys import OrgKey
from keys.trust import Signed, TrustStore
from stafet.core.errors import PackageRejected
from stafet.core.models import Organisation
from stafet.core.workers import Pool
from stafet.packages.package import Opened, open_package

MIN_PER_WORKER = 48
"""Packages per worker below which a pool does not pay for its start (≈ 0.5 s a worker)."""
PER_TASK = 8
"""Packages a worker opens per task (fewer round trips through the pool's pipes)."""
IN_FLIGHT_PER_WORKER = 4
"""Tasks queued per worker: bounds memory (an inbox is read as it is opened)."""

Outcome = Opened | PackageRejected


def unreadable(e: Exception) -> PackageRejected:
    """The refusal of a file whose opening raised something other than a refusal (``malformed``).

    :func:`~stafet.packages.package.open_package` turns what the verified content raises into
    ``bad_content`` itself; this is the net under it, so one file never fails a pass.
    """
    return PackageRejected("malformed", f"the package cannot be opened ({type(e).__name__})")


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def workers_for(count: int, cores: int | None = None) -> int:
    """How many worker processes pay for ``count`` packages (0: open them in-process)."""
    cores = available_cores() if cores is None else cores
    if cores < 2:
        return 0
    n = min(cores, count // MIN_PER_WORKER)
    return n if n >= 2 else 0


@dataclass(frozen=True)
class _Recipe:
    """What a worker needs to open packages for one organisation (picklable)."""

    org_id: str
    keys: tuple[tuple[bytes, bytes], ...]  # (PKCS#8 DER, certificate DER)
    trust: TrustStore  # picklable: anchors, CRLs, OCSP responses, pins, grace
    members: dict[str, Organisation]


_Result = tuple[dict[str, Any], bytes, dt.datetime, str, str] | PackageRejected


def worker(recipe: _Recipe) -> Callable[[list[bytes]], list[_Result]]:
    """The worker's handler (:class:`stafet.core.workers.Pool`): opens a few packages per request.

    Results cross the pipe as plain values (or the refusal).

    The keys are the parent's own, loaded (and their RSA consistency checked, which costs
    about 0.15 s of CPU for a 3072-bit key) when the parent read them from its key store;
    the same bytes, from the parent over a private pipe, are not checked a second time in
    each worker it starts.
    """
    keys = []
    for key_der, cert_der in recipe.keys:
        key = serialization.load_der_private_key(key_der, None, unsafe_skip_rsa_key_validation=True)
        assert isinstance(key, rsa.RSAPrivateKey)
        keys.append(OrgKey(key, x509.load_der_x509_certificate(cert_der)))
    trust = recipe.trust

    def open_some(datas: list[bytes]) -> list[_Result]:
        out: list[_Result] = []
        for data in datas:
            try:
                opened = open_package(data, org_id=recipe.org_id, keys=keys, trust=trust,
                                      members=recipe.members)
            except PackageRejected as e:
                out.append(e)
                continue
            except Exception as e:  # one hostile file must not fail the whole pass
                out.append(unreadable(e))
                continue
            signed = opened.signed
            signer = signed.signer.public_bytes(serialization.Encoding.DER)
            out.append((opened.doc, signer, signed.signing_time, signed.content_digest, opened.digest))
        return out

    return open_some


def _outcome(result: _Result) -> Outcome:
    if isinstance(result, PackageRejected):
        return result
    doc, signer, when, content_digest, digest = result
    return Opened(doc, Signed(x509.load_der_x509_certificate(signer), when, content_digest), digest)


def open_all(items: Iterable[tuple[str, bytes]], *, count: int, org_id: str, keys: list[OrgKey],
             trust: TrustStore, members: dict[str, Organisation],
             workers: int | None = None) -> Iterator[tuple[str, bytes, Outcome]]:
    """Open ``(name, bytes)`` items in order; yield ``(name, bytes, Opened or PackageRejected)``.

    ``count`` is how many items there are (to choose the number of workers,
    :func:`workers_for`, unless ``workers`` is given). Items are read from ``items``
    only as workers become free. Errors other than a refusal (a worker that died)
    propagate: the caller's pass stops, and the next one starts over.
    """
    n = workers_for(count) if workers is None else workers
    if n <= 0:
        for name, data in items:
            try:
                outcome: Outcome = open_package(data, org_id=org_id, keys=keys, trust=trust, members=members)
            except PackageRejected as e:
                outcome = e
            except Exception as e:  # one hostile file must not fail the whole pass
                outcome = unreadable(e)
            yield name, data, outcome
        return
    recipe = _Recipe(
        org_id,
        tuple((k.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()),
               k.cert.public_bytes(serialization.Encoding.DER)) for k in keys),
        trust,
        dict(members))
    source = iter(items)
    chunks = iter(lambda: list(itertools.islice(source, PER_TASK)), [])
    with Pool(f"{__name__}:worker", recipe, workers=n, in_flight=IN_FLIGHT_PER_WORKER) as pool:
        for chunk, results in pool.map(chunks, lambda chunk: [data for _, data in chunk]):
            for (name, data), result in zip(chunk, results, strict=True):
                yield name, data, _outcome(result)
