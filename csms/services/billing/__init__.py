"""Billing service, split by what it does (docs/billing.md, "Service"):

* ``service``: BillingService: follows sessions on the bus, one worker, timers, reconciliation wiring;
* ``state``: pure session tracking rules, site load buckets, occupancy spans, samples -> readings;
* ``site_load``: the site-load meter (utilisation for demand tiers);
* ``overstay``: the overstay tracker (phases, events);
* ``invoicer``: one price path for the live cost and the invoice, and the invoice's one write;
* ``reconcile``: pure comparison of the store with what billing tracks;
* ``reports``: read-side queries and views for the API.
"""

from .service import BillingService

__all__ = ["BillingService"]
