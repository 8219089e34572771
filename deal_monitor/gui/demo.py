"""Demo mode: the built-in portal simulator, busy with realistic deals, wired to the app.

``python main.py --demo`` (or "Try the demo" in the first-run wizard) starts a simulated
Bitrix24 portal on 127.0.0.1, seeds deals in both pipelines, registers an outgoing webhook at
the app's listener and keeps creating and moving deals, so every table, notification and
button can be seen working. Nothing of it touches the user's settings file or real data.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import threading
from pathlib import Path

from .. import config
from ..config import Settings

log = logging.getLogger(__name__)

SEED_DEALS = 24


class DemoPortal:
    """Owns the simulator and the throw-away data folder of one demo session."""

    def __init__(self, activity_interval: float = 3.0, seed_deals: int = SEED_DEALS,
                 rng_seed: int | None = None) -> None:
        from ..simulator import PortalSimulator

        self.sim = PortalSimulator(plan="standard", rate_limit=True)
        self.activity_interval = activity_interval
        self.seed_deals = seed_deals
        self.rng_seed = rng_seed
        self.data_dir = Path(tempfile.mkdtemp(prefix="deal-monitor-demo-"))
        self.started = False
        self._stranger_sent = False

    def start(self) -> None:
        from ..simulator.activity import seed

        self.sim.start("127.0.0.1", 0)
        self.started = True
        if self.seed_deals:
            seed(self.sim.portal, self.seed_deals, random.Random(self.rng_seed))

    def settings(self) -> Settings:
        """Settings for a Monitor talking to the simulator (secrets in memory only)."""
        return config.from_mapping(
            {
                "portal": {
                    "webhook_url": self.sim.webhook_url,
                    "application_token": self.sim.application_token,
                },
                "listener": {"host": "127.0.0.1", "port": 0},
                "storage": {"data_dir": str(self.data_dir)},
                "sync": {"debounce_seconds": 0.3, "reconcile_minutes": 1.0},
            },
            env={},
        )

    def connect(self, listen_url: str, stranger: bool = True) -> None:
        """Point the portal's outgoing webhook at the app and start the portal's activity."""
        self.sim.add_outgoing_webhook(listen_url)
        if self.activity_interval > 0:
            self.sim.start_activity(interval=self.activity_interval, seed=self.rng_seed)
        if stranger and not self._stranger_sent:
            self._stranger_sent = True
            threading.Thread(
                target=self._stranger, args=(listen_url,), name="demo-stranger", daemon=True
            ).start()

    @staticmethod
    def _stranger(listen_url: str) -> None:
        """One request with a wrong token, as a scanner on the internet would send."""
        import requests

        try:
            requests.post(
                listen_url,
                data={
                    "event": "ONCRMDEALUPDATE",
                    "data[FIELDS][ID]": "1",
                    "auth[application_token]": "not-the-token",
                },
                timeout=5,
            ).close()
        except requests.RequestException as exc:
            log.debug("demo stranger request failed: %s", exc)

    def stop(self) -> None:
        if self.started:
            self.sim.stop()
            self.started = False

    def cleanup(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)


__all__ = ["DemoPortal"]
