"""Benchmark: handover packages per second, next to ``openssl cms`` and the raw RSA floor.

For a ~20 KB handover and RSA keys of the same size (default 3072 bits), in one run:

* raw RSA private-key operations (one per package is the physical floor: sign on
  build, decrypt on receive);
* stafet build (schema check, MIME, sign SHA-256, encrypt AES-256 to two recipients);
* stafet receive (decrypt, verify signature, RFC 5280 path with the CRL required, member pin,
  schema, addressee checks:
  ``open_package``);
* stafet receive *and import* into the receiver's SQLite store, as a receive pass does
  it (``stafet.packages.opening.open_all``, then ``stafet.exchange.inbox.store_batch`` per batch; each
  package a new id): one by one on one core, and with the opening on ``--workers`` processes
  while the caller imports (pool start included);
* the same with the ``openssl cms`` CLI run once per message (sign | encrypt, and
  decrypt | verify), on the same payload and keys.

Each is measured on one core and with ``--workers`` processes (default: all cores).

    .venv/bin/python bench/packages.py [--seconds 3] [--bits 3072] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from keys import KeyStore, OrgKey
from keys.trust import TrustStore, fingerprint
from stafet.core.models import Organisation, OrgKind
from stafet.core.vault import Vault
from stafet.exchange.inbox import IMPORT_BATCH, Incoming, store_batch
from stafet.packages.opening import open_all
from stafet.packages.package import Opened, _inner_mime, build_package, new_package_id, open_package
from stafet.store import Store

SENDER, RECIPIENT = "779008", "uu-viborg"
_STATE: dict[str, Any] = {}


def handover(size: int = 20_000) -> dict[str, Any]:
    """A dropout handover padded with history to about ``size`` bytes of JSON (synthetic CPR)."""
    doc: dict[str, Any] = {
        "type": "handover", "package_id": new_package_id(), "sender": SENDER, "recipient": RECIPIENT,
        "created": dt.datetime.now(dt.UTC).isoformat(), "rule": "dropout_to_uu",
        "legal_basis": "vejledningsloven § 12 c",
        "youth": {"cpr": "120308-4127", "name": "Testa Ungesen", "birth_date": "2008-03-12"},
        "records": [{"kind": "dropout", "natural_key": "779008|dropout|2026-11-20|1234", "data": {
            "institution": "779008", "home_municipality": "791", "event_date": "2026-11-20",
            "programme_code": "1234", "programme_name": "EUX Business", "reason_code": "A1",
            "reason_text": "Skiftet retning"}}],
        "history": [],
    }
    i = 0
    while len(json.dumps(doc, ensure_ascii=False)) < size:
        doc["history"].append({"date": f"20{10 + i % 15:02d}-08-{1 + i % 28:02d}", "kind": "concern_flag",
                               "summary": f"Frafaldstruet: fravær {10 + i % 40} %, samtale med vejleder "
                                          f"om støtte og mentor (notat {i})", "org": "779008"})
        i += 1
    return doc


def member(org: str, kind: OrgKind) -> Organisation:
    return Organisation(id=org, kind=kind, name=org, municipality="791", endpoint=f"folder:/tmp/{org}",
                        email=f"{org}@sikkermail.bench.dk")


def make_network(root: Path, bits: int) -> dict[str, Any]:
    """A CA and two organisations with ``bits``-bit keys; plain PEM for workers and openssl."""
    ks = KeyStore(root, passphrase=b"bench")
    ks.init_ca("stafet bench CA", bits=bits)
    pems: dict[str, Any] = {"ca": ks.ca_cert().public_bytes(serialization.Encoding.PEM)}
    for org in (SENDER, RECIPIENT):
        ks.new_key(org, email=f"{org}@sikkermail.bench.dk", bits=bits)
        k = ks.issue(org)
        key = ks.current(org)
        pems[org] = (key.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()),
                     k.public_bytes(serialization.Encoding.PEM))
        (root / f"{org}.key").write_bytes(pems[org][0])
        (root / f"{org}.pem").write_bytes(pems[org][1])
    (root / "ca.pem").write_bytes(pems["ca"])
    # Revocation is required: the CA's CRL (empty) is checked for every path, as in a network.
    pems["crl"] = ks.write_crl([root / "crl.pem"]).public_bytes(serialization.Encoding.PEM)
    return pems


def _init(pems: dict[str, Any]) -> None:
    """Worker state: keys, members, trust, one built package (runs once per process)."""
    def org_key(org: str) -> OrgKey:
        key = serialization.load_pem_private_key(pems[org][0], None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return OrgKey(key, x509.load_pem_x509_certificate(pems[org][1]))

    _STATE["keys"] = {org: org_key(org) for org in (SENDER, RECIPIENT)}
    _STATE["members"] = {SENDER: member(SENDER, OrgKind.INSTITUTION),
                         RECIPIENT: member(RECIPIENT, OrgKind.GUIDANCE)}
    # RFC 5280 path validation (pyhanko-certvalidator) with the CRL required, members pinned;
    # the verdict is cached per certificate while every input stays valid.
    _STATE["trust"] = TrustStore([x509.load_pem_x509_certificate(pems["ca"])],
                                 [x509.load_pem_x509_crl(pems["crl"])],
                                 pins={org: {fingerprint(k.cert)} for org, k in _STATE["keys"].items()})
    _STATE["doc"] = handover()
    _STATE["package"] = _build()


def _build() -> bytes:
    keys, members = _STATE["keys"], _STATE["members"]
    # Each package about another youth (synthetic CPRs), as in a real inbox.
    n = _STATE["built"] = _STATE.get("built", 0) + 1
    k = os.getpid() * 7919 + n
    day = 1 + k // 1000 % 28
    youth = dict(_STATE["doc"]["youth"], cpr=f"{day:02d}0308-{4000 + k % 1000}",
                 birth_date=f"2008-03-{day:02d}")
    doc = dict(_STATE["doc"], package_id=new_package_id(), youth=youth)
    return build_package(doc, sender=members[SENDER], sender_key=keys[SENDER], recipient=members[RECIPIENT],
                         recipient_cert=keys[RECIPIENT].cert).eml


def _build_many(n: int) -> list[bytes]:
    return [_build() for _ in range(n)]


def receive_and_import(root: Path, packages: list[bytes], workers: int) -> tuple[float, float]:
    """(packages/s by wall clock, packages per CPU-second of this process and its workers)."""
    ctx = SimpleNamespace(store=Store(f"sqlite:///{root}/receiver-{workers}.db", Vault(os.urandom(32))))
    cpu = time.process_time() + _children_cpu()
    start = time.perf_counter()
    items = ((f"{i}.eml", p) for i, p in enumerate(packages))
    last = f"{len(packages) - 1}.eml"
    keys, batch = [_STATE["keys"][RECIPIENT]], []
    for name, data, outcome in open_all(items, count=len(packages), org_id=RECIPIENT, keys=keys,
                                        trust=_STATE["trust"], members=_STATE["members"], workers=workers):
        assert isinstance(outcome, Opened), outcome
        batch.append(Incoming(name, data, opened=outcome))
        if len(batch) == IMPORT_BATCH or name == last:
            store_batch(ctx, RECIPIENT, batch)  # type: ignore[arg-type]
            assert all(i.outcome == "imported" for i in batch)
            batch = []
    wall = time.perf_counter() - start
    return len(packages) / wall, len(packages) / (time.process_time() + _children_cpu() - cpu)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _receive() -> None:
    open_package(_STATE["package"], org_id=RECIPIENT, keys=[_STATE["keys"][RECIPIENT]], trust=_STATE["trust"],
                 members=_STATE["members"])


def _raw_rsa() -> None:
    _STATE["keys"][SENDER].key.sign(b"\x00" * 32, padding.PKCS1v15(), hashes.SHA256())


OPS: dict[str, Callable[[], Any]] = {"raw": _raw_rsa, "build": _build, "receive": _receive}


def _loop(name: str, seconds: float) -> int:
    """Run one operation for ``seconds``; how many completed."""
    op, n = OPS[name], 0
    op()  # warm up
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        op()
        n += 1
    return n


def rate_local(name: str, seconds: float) -> tuple[float, float]:
    """(per wall-clock second, per CPU second) on this one process."""
    start, cpu = time.perf_counter(), time.process_time()
    n = _loop(name, seconds)
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def rate_pool(pool: Any, name: str, seconds: float, workers: int) -> float:
    start = time.perf_counter()
    counts = pool.starmap(_loop, [(name, seconds)] * workers)
    return sum(counts) / (time.perf_counter() - start)


def openssl_rates(root: Path, seconds: float, workers: int) -> dict[str, tuple[float, float]]:
    """``openssl cms`` once per message: sign | encrypt, and decrypt | verify; 1 and N at a time."""
    s_key, s_cert, r_key, r_cert = (str(root / f) for f in (f"{SENDER}.key", f"{SENDER}.pem",
                                                             f"{RECIPIENT}.key", f"{RECIPIENT}.pem"))
    inner = root / "inner.mime"
    inner.write_bytes(_inner_mime(_STATE["doc"], _STATE["members"][SENDER], _STATE["members"][RECIPIENT]))
    package = root / "package.eml"
    package.write_bytes(_STATE["package"])

    def pipe(first: list[str], second: list[str], stdin: bytes | None = None) -> bytes:
        a = subprocess.run(first, input=stdin, capture_output=True, check=True)
        return subprocess.run(second, input=a.stdout, capture_output=True, check=True).stdout

    def send() -> None:
        pipe(["openssl", "cms", "-sign", "-in", str(inner), "-signer", s_cert, "-inkey", s_key,
              "-md", "sha256"], ["openssl", "cms", "-encrypt", "-aes256", r_cert, s_cert])

    def receive() -> None:
        pipe(["openssl", "cms", "-decrypt", "-in", str(package), "-recip", r_cert, "-inkey", r_key],
             ["openssl", "cms", "-verify", "-CAfile", str(root / "ca.pem"), "-out", os.devnull])

    def count(fn: Callable[[], None]) -> int:
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            fn()
            n += 1
        return n

    out = {}
    for name, fn in (("send", send), ("receive", receive)):
        fn()
        start, cpu = time.perf_counter(), _children_cpu()
        n = count(fn)
        one, per_cpu = n / (time.perf_counter() - start), n / (_children_cpu() - cpu)
        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as ex:  # the work is in the child processes
            many = sum(ex.map(count, [fn] * workers)) / (time.perf_counter() - start)
        out[name] = (one, many, per_cpu)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    p.add_argument("--bits", type=int, default=3072)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="stafet-bench-") as tmp:
        root = Path(tmp)
        pems = make_network(root, args.bits)
        _init(pems)
        eml_kb = len(_STATE["package"]) / 1024
        json_kb = len(json.dumps(_STATE["doc"], ensure_ascii=False).encode()) / 1024
        print(f"RSA-{args.bits}, handover JSON {json_kb:.1f} KB, package (.eml) {eml_kb:.1f} KB, "
              f"{args.seconds:g} s per figure, {args.workers} workers, load {os.getloadavg()[0]:.1f}")
        rows: dict[str, tuple[float, float, float]] = {}
        ctx = mp.get_context("fork")
        with ctx.Pool(args.workers, initializer=_init, initargs=(pems,)) as pool:
            for name in ("raw", "build", "receive"):
                one, per_cpu = rate_local(name, args.seconds)
                rows[name] = (one, rate_pool(pool, name, args.seconds, args.workers), per_cpu)
            n = max(200, int(rows["receive"][1] * args.seconds * 1.2))  # each package is imported once
            per = -(-n // args.workers)
            batches = pool.map(_build_many, [per] * args.workers)
        packages = [p for b in batches for p in b]
        one, per_cpu = receive_and_import(root, packages[: n // 2], 0)
        many, _ = receive_and_import(root, packages[n // 2:], args.workers)
        rows["import"] = (one, many, per_cpu)
        ossl = openssl_rates(root, args.seconds, args.workers)
    rows["openssl send"], rows["openssl receive"] = ossl["send"], ossl["receive"]
    labels = {"raw": "raw RSA private-key op", "build": "stafet build+sign+encrypt",
              "receive": "stafet receive (decrypt+verify+checks)",
              "import": "stafet receive + import into the store",
              "openssl send": "openssl cms sign | encrypt, per message",
              "openssl receive": "openssl cms decrypt | verify, per message"}
    print(f"{'':42}{'1 core':>10}{f'{args.workers} procs':>10}{'per CPU-s':>11}")
    for name, label in labels.items():
        one, many, per_cpu = rows[name]
        print(f"{label:42}{one:>8.0f}/s{many:>8.0f}/s{per_cpu:>9.0f}/s")
    print("ratios to the raw RSA rate of one core and to openssl cms per message (1 core / both):")
    for what, ours, theirs in (("build", "build", "openssl send"), ("receive", "receive", "openssl receive"),
                               ("receive+import", "import", "openssl receive")):
        raw, other = rows["raw"][0], rows[theirs]
        print(f"  {what + ':':16}{rows[ours][0] / raw:.2f}x / {rows[ours][1] / raw:.2f}x raw RSA "
              f"(target >= 0.7), {rows[ours][0] / other[0]:.1f}x / {rows[ours][1] / other[1]:.1f}x openssl "
              f"(target >= 5); by CPU time {rows[ours][2] / rows['raw'][2]:.2f}x raw, "
              f"{rows[ours][2] / other[2]:.1f}x openssl")


if __name__ == "__main__":
    main()
