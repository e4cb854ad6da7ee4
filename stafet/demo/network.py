"""The demo network: organisations, a demo CA, folder endpoints and sample exports.

Layout (``.stafet-demo/`` next to ``$STAFET_HOME``; the drop folders belong to the
source systems, the inboxes to the receivers, so none of it is under ``$STAFET_HOME``)::

    .stafet-demo/network.yaml        the network configuration
    .stafet-demo/certs/<org>.pem      members' public certificates, ca.pem the anchor
    .stafet-demo/certs/crl.pem        the demo CA's CRL (rewritten by `stafet keys revoke`)
    .stafet-demo/drop/<source>/       where each source system drops its exports
    .stafet-demo/inbox/<org>/         each member's package inbox (folder endpoint)
    .stafet-demo/members/uu-skive/    UU Skive runs its own stafet (`stafet receive`)
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization

from keys import KeyStore

HUB_HOSTED = ["779008", "751001", "280012", "uu-viborg", "jobcenter-viborg", "familie-viborg",
              "social-viborg", "uu-thy", "koordinator"]
OWN_NODE = ["uu-skive"]

# The demo-only export with rows that break rules: an unknown event type (AFBRUDT), a CPR
# with no such date (31 February), and a dropout with a 2-digit municipality, an unknown
# reason code and a decimal point instead of a comma.
BAD_ROWS_FILE = "779008_haendelser_2026112202.csv"

MEMBERS = [
    ("uu-viborg", "guidance", "UU Viborg", "791", ["791"]),
    ("uu-skive", "guidance", "UU Skive", "779", ["779"]),
    ("uu-thy", "guidance", "UU Thy", "787", ["787"]),
    ("779008", "institution", "Mercantec", "791", []),
    ("751001", "institution", "Viborg Katedralskole", "791", []),
    ("280012", "primary_school", "Vestervang Skole", "791", []),
    ("jobcenter-viborg", "job_centre", "Jobcenter Viborg", "791", []),
    ("familie-viborg", "family_services", "Familieafdelingen Viborg", "791", []),
    ("social-viborg", "social_services", "Socialafdelingen Viborg", "791", []),
    ("koordinator", "coordinator", "Netværkskoordinator Viborg", "791", []),
]

# Drop folder → the files the source system drops there: the published samples
# (FORMATS.md) plus demo-only files (a plan with support needs and a consent file that
# covers the plan but not the support needs: a partial handover, and a parent's consent
# to tell the pupil's support needs to the school applied to; an EASY-A export whose three
# rows each break a rule, for the quarantine and the steward's report; and the youth
# register sample with one more row: a 16-year-old the network knows nothing else of).
SOURCES = {
    "easy-a": ["779008_haendelser_2026112102.csv", BAD_ROWS_FILE],
    "gymnasium": ["751001_elevhaendelser_202611210200.xml"],
    "jobcenter": ["jobcenter_791_paalaeg_20261121.csv"],
    "uu-planer": ["uu_791_planer_20261120.xml", "uu_791_planer_20261121.xml"],
    "familie": ["familie_791_overgange_20261121.csv"],
    "samtykker": ["samtykker_791_20261121.csv", "samtykker_791_20261122.csv"],
    "grundskole": ["grundskole_280012_elever_20261125.xml"],
    "ungeregister": ["cpr_791_unge_20261125.csv"],
    "jobcenter-samtaler": ["jobcenter_791_samtaler_20261121.csv"],
}


SOURCE_ORG = {"easy-a": "779008", "gymnasium": "751001", "jobcenter": "jobcenter-viborg",
              "uu-planer": "uu-viborg", "familie": "familie-viborg", "samtykker": "uu-viborg",
              "grundskole": "280012", "ungeregister": "uu-viborg", "jobcenter-samtaler": "jobcenter-viborg"}
"""Whose source system each drop folder is: a steward of that organisation sees its sources."""


def member_home(demo: Path, org: str) -> Path:
    """The home of a member that runs its own stafet node."""
    return demo / "members" / org


def _issue(ca: KeyStore, ks: KeyStore, org: str, name: str, email: str, bits: int) -> None:
    """A key in ``ks`` with a certificate from ``ca``'s demo CA (a real CSR round trip)."""
    if ks.keys(org):
        return
    csr = ks.new_key(org, display=name, email=email, bits=bits)
    csr_path = ca.org_dir(org) / "pending.csr"
    csr_path.parent.mkdir(parents=True, exist_ok=True)
    if ca is ks:
        ca.issue(org)
        return
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    cert = ca.sign_csr(org, csr)
    csr_path.unlink()
    ks.install(org, cert)


def setup_demo(demo: Path, home: Path, *, drop_samples: bool = True, bits: int = 3072) -> Path:
    """Create (or refresh) the demo network; returns the path of its ``network.yaml``.

    ``bits``: RSA key size (tests use 2048 to save key-generation time).
    """
    demo.mkdir(parents=True, exist_ok=True)
    ca = KeyStore(home)
    ca.init_ca(bits=bits)
    certs = demo / "certs"
    certs.mkdir(exist_ok=True)
    shutil.copy(ca.ca_dir / "ca.pem", certs / "ca.pem")
    members = []
    for org, kind, name, muni, serves in MEMBERS:
        email = f"{org}@sikkermail.{'stafet-demo'}.dk"
        ks = KeyStore(member_home(demo, org)) if org in OWN_NODE else ca
        _issue(ca, ks, org, name, email, bits)
        cert = ks.current(org).cert
        (certs / f"{org}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (demo / "inbox" / org).mkdir(parents=True, exist_ok=True)
        m: dict[str, object] = {"id": org, "kind": kind, "name": name, "municipality": muni,
             "email": email, "endpoint": f"folder:inbox/{org}", "certificate": f"certs/{org}.pem"}
        if serves:
            m["serves"] = serves
        if kind != "coordinator":  # where duty notices go when the record names nobody, and the last step
            m["duty_address"] = f"pligter.{org}@sikkermail.stafet-demo.dk"
            m["management_address"] = f"ledelse.{org}@sikkermail.stafet-demo.dk"
        members.append(m)
    sources = []
    for name, files in SOURCES.items():
        drop = demo / "drop" / name
        drop.mkdir(parents=True, exist_ok=True)
        if drop_samples:
            for f in files:
                data = resources.files("stafet.demo.data").joinpath(f).read_bytes()
                (drop / f).write_bytes(data)
        sources.append({"name": name, "location": f"folder:drop/{name}", "org": SOURCE_ORG[name]})
    ca.write_crl([certs / "crl.pem"])  # the CRL the network lists: fresh on every run
    config = {"network": "demo-viborg", "trust_anchors": ["certs/ca.pem"], "crls": ["certs/crl.pem"],
              "ack_limit_hours": 48, "members": members, "sources": sources}
    path = demo / "network.yaml"
    path.write_text("# The demo network, written by `stafet demo`.\n"
                    + yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
