"""OCPP 2.0.1 adapter: handlers (charger -> CSMS), commands (CSMS -> charger), pure mappings."""
