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
redo. The workers are the caller's own children: the organisation's decryption
keys reach them over the pool's private pipe (never through a file), and each
watches its parent and exits when the parent is gone (SIGKILL included).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import itertools
import multiprocessing
import os
import sys
import threading
import time
import types
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from keys import OrgKey
from keys.trust import Signed, TrustStore
from stafet.core.errors import PackageRejected
from stafet.core.models import Organisation
from stafet.packages.package import Opened, open_package

MIN_PER_WORKER = 48
"""Packages per worker below which a pool does not pay for its start (≈ 0.5 s a worker)."""
PER_TASK = 8
"""Packages a worker opens per task (fewer round trips through the pool's pipes)."""
IN_FLIGHT_PER_WORKER = 4
"""Tasks queued per worker: bounds memory (an inbox is read as it is opened)."""

Outcome = Opened | PackageRejected


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
    anchors: tuple[bytes, ...]
    crls: tuple[bytes, ...]
    members: dict[str, Organisation]
    parent: int  # the caller's pid: a worker whose parent is gone exits


_WORKER: dict[str, Any] = {}


def _watch_parent(parent: int) -> None:
    """Exit when the parent is gone (SIGKILLed): the pool's pipes do not tell an idle worker."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(70)


def _start_worker(recipe: _Recipe) -> None:
    threading.Thread(target=_watch_parent, args=(recipe.parent,), name="stafet-parent-watch",
                     daemon=True).start()
    keys = []
    for key_der, cert_der in recipe.keys:
        key = serialization.load_der_private_key(key_der, None)
        assert isinstance(key, rsa.RSAPrivateKey)
        keys.append(OrgKey(key, x509.load_der_x509_certificate(cert_der)))
    _WORKER.update(org_id=recipe.org_id, keys=keys, members=recipe.members,
                   trust=TrustStore([x509.load_der_x509_certificate(a) for a in recipe.anchors],
                                    [x509.load_der_x509_crl(c) for c in recipe.crls]))


_Result = tuple[dict[str, Any], bytes, dt.datetime, str, str] | PackageRejected


def _open_in_worker(datas: list[bytes]) -> list[_Result]:
    """Open a few packages in a worker; results cross the pipe as plain values (or the refusal)."""
    out: list[_Result] = []
    for data in datas:
        try:
            opened = open_package(data, org_id=_WORKER["org_id"], keys=_WORKER["keys"],
                                  trust=_WORKER["trust"], members=_WORKER["members"])
        except PackageRejected as e:
            out.append(e)
            continue
        signed = opened.signed
        signer = signed.signer.public_bytes(serialization.Encoding.DER)
        out.append((opened.doc, signer, signed.signing_time, signed.content_digest, opened.digest))
    return out


def _outcome(result: _Result) -> Outcome:
    if isinstance(result, PackageRejected):
        return result
    doc, signer, when, content_digest, digest = result
    return Opened(doc, Signed(x509.load_der_x509_certificate(signer), when, content_digest), digest)


@contextlib.contextmanager
def _plain_main() -> Iterator[None]:
    """Hide ``__main__`` while workers start.

    A spawned worker re-imports its parent's main module (for a Prefect flow run that is
    Prefect's engine: seconds of imports). The workers need nothing from it.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


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
                yield name, data, open_package(data, org_id=org_id, keys=keys, trust=trust, members=members)
            except PackageRejected as e:
                yield name, data, e
        return
    recipe = _Recipe(
        org_id,
        tuple((k.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()),
               k.cert.public_bytes(serialization.Encoding.DER)) for k in keys),
        tuple(a.public_bytes(serialization.Encoding.DER) for a in trust.anchors),
        tuple(c.public_bytes(serialization.Encoding.DER) for c in trust.crls),
        dict(members), os.getpid())
    pending: collections.deque[tuple[list[tuple[str, bytes]], Future[list[_Result]]]] = collections.deque()
    source = iter(items)
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                             initargs=(recipe,)) as pool:
        def fill() -> None:
            while len(pending) < n * IN_FLIGHT_PER_WORKER:
                chunk = list(itertools.islice(source, PER_TASK))
                if not chunk:
                    return
                pending.append((chunk, pool.submit(_open_in_worker, [data for _, data in chunk])))

        with _plain_main():  # the first submits start every worker
            fill()
        while pending:
            chunk, future = pending.popleft()
            results = future.result()
            fill()
            for (name, data), result in zip(chunk, results, strict=True):
                yield name, data, _outcome(result)
