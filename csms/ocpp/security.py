"""OCPP security profiles at the handshake: the TLS context and the admission rule. No I/O but file reads.

Profiles (OCPP 2.0.1 Part 2 A00, the 1.6 security whitepaper), plus our explicit opt-out 0:

| profile | transport | charger proves its identity with |
|---|---|---|
| 0 | ws:// or wss:// | nothing (tests, simulators on loopback; never the default) |
| 1 | ws:// or wss:// | HTTP Basic auth, username = identity |
| 2 | wss:// only | HTTP Basic auth |
| 3 | wss:// only | a client certificate, signed by the configured CA, whose subject CN is the identity |

A charger configured for a profile may use a stronger transport (profile 1 over wss:// is fine), never a
weaker one: a profile 2 or 3 charger on ws:// is refused, whatever its password.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from csms.config import TlsConfig

#: TLS 1.2 suites OCPP 2.0.1 requires the CSMS to support (A00.FR.318-320, the 1.6 whitepaper's list), plus
#: the ECDHE-RSA pair for RSA server keys with forward secrecy. TLS 1.3 suites are OpenSSL's (all AEAD).
OCPP_TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256",  # TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    "ECDHE-ECDSA-AES256-GCM-SHA384",  # TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "AES128-GCM-SHA256",              # TLS_RSA_WITH_AES_128_GCM_SHA256
    "AES256-GCM-SHA384",              # TLS_RSA_WITH_AES_256_GCM_SHA384
])


def server_ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """TLS 1.2+ with OCPP's suites; with a CA file, clients are asked for a certificate (optional at the
    TLS layer: profile 2 chargers have none; profile 3 is enforced by `admit`). A certificate that is
    presented must verify against the CA, or the TLS handshake fails."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(OCPP_TLS12_CIPHERS)
    ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.ca_file is not None:
        ctx.load_verify_locations(cafile=str(tls.ca_file))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def certificate_cn(peercert: dict[str, Any] | None) -> str | None:
    """The subject commonName of a verified peer certificate (`SSLObject.getpeercert()`), else None."""
    for rdn in (peercert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


@dataclass(frozen=True, slots=True)
class Admission:
    """What the handshake does next: refuse with `status`, ask for the password, or let the charger in."""

    status: int | None = None  # an HTTP status: refuse
    reason: str = ""
    needs_password: bool = False


ADMIT = Admission()
PASSWORD = Admission(needs_password=True)


def admit(profile: int, ident: str, *, tls: bool, cert_cn: str | None, known: bool = True) -> Admission:
    """The rule of the table above. `known=False` (allow_unknown_chargers): no password exists to check,
    the transport part of the profile still applies."""
    if profile >= 2 and not tls:
        return Admission(HTTPStatus.FORBIDDEN, f"security profile {profile} requires TLS (wss://)")
    if profile == 3:
        if cert_cn is None:
            return Admission(HTTPStatus.UNAUTHORIZED, "security profile 3 requires a client certificate")
        if cert_cn != ident:
            return Admission(HTTPStatus.FORBIDDEN, f"client certificate is for {cert_cn!r}, not this identity")
        return ADMIT
    if profile in (1, 2) and known:
        return PASSWORD
    return ADMIT
