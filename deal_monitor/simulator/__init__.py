"""A faithful Bitrix24 portal simulator for tests, benchmarks and ``--demo``.

Serves the REST surface the app uses (inbound webhook and OAuth), the OAuth token
endpoint, outgoing events in the real wire format, offline events, batch with ``$result``
references, the leaky-bucket and operating limits, and switchable faults.

    from deal_monitor.simulator import PortalSimulator
    with PortalSimulator() as sim:
        sim.portal.add_deal({"TITLE": "Поставка"})
        ...
"""

from .delivery import Delivery
from .errors import RestError
from .faults import Faults
from .simulator import PortalSimulator
from .stats import Stats

__all__ = ["Delivery", "Faults", "PortalSimulator", "RestError", "Stats"]
