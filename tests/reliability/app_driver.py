"""Runs the sync core in its own process, for tests that must kill it or watch it exit.

``python -m tests.reliability.app_driver --config C --secrets S.json``: like ``--headless``, but
the secret store is a JSON file that stands in for the OS keyring (written on every change,
as a keyring would keep a rotated refresh token).

``--lease-seconds N`` shortens the lease a shared PostgreSQL inbox gives a pass (30 s in the
product, ``store.state.LEASE_SECONDS``), for the takeover test that kills a lease holder.

``python -m tests.reliability.app_driver --config C --allow-backend mod.Class``: the real CLI
(``deal_monitor.cli.main --headless``) with one more keyring backend on the allow-list, to
play a secure backend that hangs (an unlock prompt nobody answers).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path


def _file_store(path: Path):
    from deal_monitor.credentials import MemoryStore

    class FileStore(MemoryStore):
        def set(self, name: str, value: str) -> None:
            super().set(name, value)
            self._flush()

        def delete(self, name: str) -> None:
            super().delete(name)
            self._flush()

        def _flush(self) -> None:
            with self._lock:
                data = dict(self._values)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, path)

    return FileStore(json.loads(path.read_text(encoding="utf-8")))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--secrets", type=Path)
    parser.add_argument("--allow-backend")
    parser.add_argument("--keyring-timeout", type=float)
    parser.add_argument("--lease-seconds", type=float)
    args = parser.parse_args()
    if args.lease_seconds:
        from deal_monitor.store import state

        state.LEASE_SECONDS = args.lease_seconds
    if args.allow_backend:
        from deal_monitor import cli
        from deal_monitor.credentials import store

        store.SECURE_BACKENDS.add(args.allow_backend)
        if args.keyring_timeout:  # scale the 5 s time limit down for a quick test
            store.KeyringStore.__init__.__defaults__ = (args.keyring_timeout,)
        # the keyring never answers, so no credentials are usable: a server must be told to
        # start anyway (else it exits 2 at once, see test_cli_server)
        return cli.main(["--headless", "--config", str(args.config), "--wait-for-credentials"])

    from deal_monitor import config, logs, paths
    from deal_monitor.service import Monitor

    settings = config.load(args.config)
    logs.setup(paths.data_dir(settings.storage.data_dir) / "logs")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    monitor = Monitor(settings, secrets=_file_store(args.secrets))
    monitor.start()
    print("driver: started", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        monitor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
