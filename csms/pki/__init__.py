"""Certificate adapter: the CA that signs chargers' certificates (`LocalCA`), with the `cryptography` package.

An adapter like csms.ocpp or csms.store: it implements the domain's `CertificateAuthority` port and imports
no other adapter.
"""

from csms.pki.local_ca import LocalCA, certificate_hash_data

__all__ = ["LocalCA", "certificate_hash_data"]
