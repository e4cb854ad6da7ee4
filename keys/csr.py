"""Certificate signing requests: what a new organisation key asks a CA to certify.

``stafet keys new`` makes a key and its CSR; the CSR goes to an external CA (in
Denmark OCES) or to the demo network CA (:mod:`keys.ca`).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def org_name(org_id: str, display: str = "", email: str = "") -> x509.Name:
    """The subject of an organisation certificate."""
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "DK"),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, display or org_id),
             x509.NameAttribute(NameOID.COMMON_NAME, org_id)]
    if email:
        attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    return x509.Name(attrs)


def make_csr(key: rsa.RSAPrivateKey, org_id: str, display: str = "",
             email: str = "") -> x509.CertificateSigningRequest:
    """A CSR for ``key`` naming the organisation (CN ``org_id``) and its sikker-mail address."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(org_name(org_id, display, email))
    if email:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    return builder.sign(key, hashes.SHA256())
