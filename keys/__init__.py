"""Keys and certificates: network CA, organisation keys, CSRs, import, rotate, revoke, list; trust.

What lives here:

* :mod:`keys.store` — :class:`KeyStore`, the node's own keys: a new key and its CSR,
  a certificate installed or imported (OCES), rotation, the decryption keys still
  usable, ``stafet keys list`` (:class:`KeyInfo`);
* :mod:`keys.ca` — :class:`~keys.ca.NetworkCA`, the demo/test network CA that
  :class:`KeyStore` builds on: create it, sign CSRs, revoke, write the CRL;
* :mod:`keys.csr` — the subject and CSR of an organisation key;
* :mod:`keys.files` — the key passphrase and the encrypted key files;
* :mod:`keys.trust` — who may send to us: trust anchors, CRLs, CMS signature checks.

What it may import: :mod:`stafet.core` (errors, the secret lookup) and cryptography /
asn1crypto only — never the store, transports or anything above them (the import
rule in ``tests/architecture.py``).

The network CA serves demo and test networks; a real network orders organisation
certificates (in Denmark OCES) from an external CA with the CSR of ``stafet keys new``
and installs them with ``stafet keys import``.

Layout under ``$STAFET_HOME/keys``::

    ca/ca.key, ca/ca.pem                demo network CA (key encrypted like the others)
    ca/issued.json, ca/revoked.json     serials the CA issued / revoked (org, dates)
    ca/crl.pem                          the CA's current CRL (also written where crls: says)
    <org>/<serial>.key   PKCS#8, encrypted with the key passphrase, 0600
    <org>/<serial>.key.checked   the key file's check stamp (0600): its exact bytes passed the
                         full RSA key check here (an HMAC under the passphrase; see keys.files)
    <org>/<serial>.pem   the certificate for that key
    <org>/pending.key + pending.csr   a new key waiting for its certificate

A key file's full RSA check (p and q prime, the CRT values consistent: ≈ 110 ms for
RSA-3072, nearly all of a load) runs the first time a process with write access to the
folder loads those bytes (``stafet keys list`` loads every key); later processes, such as
a night's flow runs, load a stamped file without it. A changed file, or a stamp that is
not the passphrase's HMAC of its bytes, is checked in full again.

The passphrase comes from ``STAFET_KEY_PASSPHRASE``, a Prefect Secret block named by
``STAFET_KEY_PASSPHRASE_BLOCK``, or (demo) ``$STAFET_HOME/key-passphrase`` (0600), looked
up by :func:`stafet.core.secrets.find_secret`.
"""

from keys.ca import NetworkCA
from keys.csr import org_name
from keys.store import WARN_DAYS, KeyInfo, KeyStore, OrgKey

__all__ = ["WARN_DAYS", "KeyInfo", "KeyStore", "NetworkCA", "OrgKey", "org_name"]
