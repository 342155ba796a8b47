"""Live site load balancing, split along its flow (docs/architecture.md, "How a plan reaches chargers"):

- triggers.py   domain events and the slot timer -> re-plan requests per site (debounce, immediate ones)
- snapshot.py   database + control state -> SchedulingInput and per-session facts (public: bookings use it)
- planning.py   where plans run (worker processes or a thread), timeout, fallback plan, plan metrics
- idle_share.py the idle EVSEs' TxDefault: their safe share of what the plan leaves (pure)
- delivery.py   two-phase min(old, new) profile sending, probing for control, retries
- control.py    what each EVSE accepted and what its car does (the safety accounting's memory)
- dwell.py      departures learned from a driver's history
- margin.py     the departure margin learned from how early the site's drivers left
- views.py      the plan as the API and MQTT show it
- ports.py      what it needs from others: prices, bookings, plan listeners
- service.py    SmartChargingService, the facade that runs them
"""

from .delivery import TX_DEFAULT_PROFILE_ID, TX_PROFILE_ID_BASE, tx_profile
from .ports import BookingPort, PlanListener, PricePort
from .service import SmartChargingService, make_planners
from .snapshot import SessionInfo, Snapshot

__all__ = ["TX_DEFAULT_PROFILE_ID", "TX_PROFILE_ID_BASE", "BookingPort", "PlanListener", "PricePort",
           "SessionInfo", "SmartChargingService", "Snapshot", "make_planners", "tx_profile"]
