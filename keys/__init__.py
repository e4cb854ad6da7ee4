"""Keys and certificates: network CA, organisation keys, CSRs, import, rotate, revoke, list.

The network CA serves demo and test networks; a real network orders organisation
certificates (in Denmark OCES) from an external CA with the CSR of ``stafet keys new``
and installs them with ``stafet keys import``.

Layout under ``$STAFET_HOME/keys``::

    ca/ca.key, ca/ca.pem                demo network CA (key encrypted like the others)
    ca/issued.json, ca/revoked.json     serials the CA issued / revoked (org, dates)
    ca/crl.pem                          the CA's current CRL (also written where crls: says)
    <org>/<serial>.key   PKCS#8, encrypted with the key passphrase, 0600
    <org>/<serial>.pem   the certificate for that key
    <org>/pending.key + pending.csr   a new key waiting for its certificate

The passphrase comes from ``STAFET_KEY_PASSPHRASE``, a Prefect Secret block named by
``STAFET_KEY_PASSPHRASE_BLOCK``, or (demo) ``$STAFET_HOME/key-passphrase`` (0600).
"""

from keys.store import WARN_DAYS, KeyInfo, KeyStore, OrgKey

__all__ = ["WARN_DAYS", "KeyInfo", "KeyStore", "OrgKey"]
