"""One exception tree for everything the core rejects; each boundary maps it once (OCPP, HTTP)."""


class DomainError(Exception):
    """Base for everything the core can reject."""


class UnknownStation(DomainError):
    pass


class UnknownTransaction(DomainError):
    pass


class UnknownIdToken(DomainError):
    pass


class InvalidRequest(DomainError):
    """The request is well-formed but its values make no sense (e.g. an unknown EVSE)."""


class Conflict(DomainError):
    """The request contradicts current state (overlapping booking, duplicate id)."""


class StationOffline(DomainError):
    pass


class StoreUnavailable(DomainError):
    """The database cannot be used now; nothing was stored (the store logs the outage once)."""


class UnknownSite(DomainError):
    pass


class UnknownBooking(DomainError):
    pass


class NotConfigured(DomainError):
    """A request the central system can only serve with a part the operator has not configured (for example
    ISO 15118 certificate checks without a PKI/OCSP backend). OCPP answers NotSupported, HTTP 501."""
