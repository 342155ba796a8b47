"""Certificate payload pieces both OCPP versions spell alike (CertificateHashData, OCSPRequestData). Pure.

The version packages import this module, never each other. The words that differ (1.6 calls the CSMS root
CentralSystemRootCertificate and knows two uses only) live in v16/from_domain.py and v201/from_domain.py.
"""

from __future__ import annotations

from typing import Any

from csms.domain.certificates import CertificateHashData, OcspRequestData, PkiAnswer, SignVerdict


def hash_data_payload(h: CertificateHashData) -> dict[str, str]:
    return {"hashAlgorithm": h.hash_algorithm, "issuerNameHash": h.issuer_name_hash,
            "issuerKeyHash": h.issuer_key_hash, "serialNumber": h.serial_number}


def hash_data_of(d: dict[str, Any]) -> CertificateHashData:
    """From a camelCase (answer) or snake_case (handler kwargs) CertificateHashData object."""
    def get(camel: str, snake: str) -> str:
        return str(d[camel] if camel in d else d[snake])
    return CertificateHashData(get("hashAlgorithm", "hash_algorithm"), get("issuerNameHash", "issuer_name_hash"),
                               get("issuerKeyHash", "issuer_key_hash"), get("serialNumber", "serial_number"))


def ocsp_request(d: dict[str, Any]) -> OcspRequestData:
    """A handler's snake_case OCSPRequestDataType."""
    return OcspRequestData(hash_data_of(d), str(d["responder_url"]))


def hash_row(use: str, h: CertificateHashData) -> dict[str, str]:
    """One row of the gateway's `installed_certificates` data."""
    return {"use": use, "hash_algorithm": h.hash_algorithm, "issuer_name_hash": h.issuer_name_hash,
            "issuer_key_hash": h.issuer_key_hash, "serial_number": h.serial_number}


def status_info(reason: str) -> dict[str, str] | None:
    """2.0.1 StatusInfoType for a refusal: reasonCode is at most 20 characters, the sentence goes in
    additionalInfo (512)."""
    return {"reason_code": "Rejected", "additional_info": reason[:512]} if reason else None


def sign_status(verdict: SignVerdict) -> str:
    return "Accepted" if verdict.accepted else "Rejected"


def pki_status_info(answer: PkiAnswer) -> dict[str, str] | None:
    return {"reason_code": answer.status[:20], "additional_info": answer.reason[:512]} if answer.reason else None
