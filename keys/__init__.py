"""Keys and certificates: the network CA (demo/test networks), organisation keys,
CSRs for an external CA (OCES), issue, import, rotate, revoke, list.

Layout under ``$STAFET_HOME/keys``::

    ca/ca.key, ca/ca.pem, ca/crl.pem, ca/serials.txt   demo network CA
    <org>/<serial>.key   PKCS#8, encrypted with the key passphrase, 0600
    <org>/<serial>.pem   the certificate for that key
    <org>/pending.key + pending.csr   a new key waiting for its certificate

The passphrase comes from ``STAFET_KEY_PASSPHRASE``, a Prefect Secret block named by
``STAFET_KEY_PASSPHRASE_BLOCK``, or (demo) ``$STAFET_HOME/key-passphrase`` (0600).
"""

from keys.store import KeyStore, OrgKey

__all__ = ["KeyStore", "OrgKey"]
