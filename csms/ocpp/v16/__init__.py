"""OCPP 1.6J adapter: handlers (charger -> CSMS), commands (CSMS -> charger), pure mappings."""
