"""The admission rule of security profiles (csms.ocpp.security.admit) and certificate CN extraction."""

import pytest

from csms.ocpp.security import ADMIT, PASSWORD, admit, certificate_cn


@pytest.mark.parametrize("profile, tls, cn, expected", [
    (0, False, None, ADMIT),
    (0, True, None, ADMIT),
    (1, False, None, PASSWORD),
    (1, True, "CP", PASSWORD),
    (2, False, None, 403),
    (2, True, None, PASSWORD),
    (3, False, "CP", 403),   # a certificate cannot arrive without TLS, but the transport is checked first
    (3, True, None, 401),
    (3, True, "OTHER", 403),
    (3, True, "CP", ADMIT),
])
def test_admission_table(profile: int, tls: bool, cn: str | None, expected: object) -> None:
    got = admit(profile, "CP", tls=tls, cert_cn=cn)
    assert (got.status if isinstance(expected, int) else got) == expected


def test_unknown_chargers_have_no_password_to_check() -> None:
    assert admit(1, "NEW", tls=False, cert_cn=None, known=False) == ADMIT
    assert admit(2, "NEW", tls=False, cert_cn=None, known=False).status == 403


def test_certificate_cn() -> None:
    cert = {"subject": ((("organizationName", "Acme"),), (("commonName", "CP-7"),))}
    assert certificate_cn(cert) == "CP-7"
    assert certificate_cn({}) is None and certificate_cn(None) is None
