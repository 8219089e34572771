"""Screenshots of the first-run wizard's three ways in and of the connection doctor.

    python scripts/screenshots_connect.py [--out docs/screenshots]

Runs offscreen against the portal simulator: the question page, pull mode with the webhook
tested, the local application signed in through the loopback redirect (an HTTP client plays
the browser), its advanced part (OAuth server and sign-in port) opened as a cloud user sees it,
the public-address page, and "Check connection" on a pull-mode app and on a signed-in local
application; each in Russian and English (``wizard_*_ru.png``, ``doctor_en.png``, ...).

The simulator plays the OAuth server too (plain http on 127.0.0.1, allowed as a private
address); on the signed-in shot the advanced part is folded, as a cloud user leaves it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import requests  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

# importing screenshots sets up offscreen Qt, throwaway user folders and no keyring
from screenshots import _TMP, ROOT, start, wait_until  # noqa: E402, I001

from deal_monitor import config  # noqa: E402
from deal_monitor.bitrix.oauth import CLIENT_SECRET_KEY, TOKENS_KEY  # noqa: E402
from deal_monitor.credentials import FileStore, MemoryStore  # noqa: E402
from deal_monitor.gui.controller import AppController  # noqa: E402
from deal_monitor.gui.doctordialog import DoctorDialog  # noqa: E402
from deal_monitor.gui.wizard import APP, PULL, PUSH, QUESTION, FirstRunDialog  # noqa: E402
from deal_monitor.service import Monitor  # noqa: E402
from deal_monitor.simulator import PortalSimulator  # noqa: E402

CLIENT_ID, SECRET = "local.6561f2c1a3b4e7.31415926", "simulator-only-client-secret-for-shots"


def browser(url: str) -> None:
    """The system browser: follows the portal's consent redirect to the loopback callback."""
    threading.Thread(target=lambda: requests.get(url, timeout=10), daemon=True).start()


def shoot_wizard(app: QApplication, sim: PortalSimulator, out: Path, lang: str) -> list[Path]:
    written = []

    def save(widget, name: str) -> None:
        wait_until(app, lambda: True)
        app.processEvents()
        path = out / f"{name}_{lang}.png"
        widget.grab().save(str(path))
        written.append(path)

    base = config.from_mapping({"storage": {"data_dir": str(_TMP / f"data-{lang}")},
                                "portal": {"oauth_server": sim.url, "allow_private_http": True}},
                               env={})
    wizard = FirstRunDialog(settings=base, tokens=MemoryStore())
    wizard.advanced.set_expanded(False)  # as a cloud user finds it (the base opened it)
    wizard.open_url = browser
    wizard.show()
    wizard.pages.setCurrentIndex(QUESTION)
    save(wizard, "wizard_question")

    wizard.pages.setCurrentIndex(PULL)
    wizard.pull_webhook.setText(sim.webhook_url)
    wizard.pull_test.click()
    wait_until(app, lambda: wizard.pull_msg.ok, what="webhook test")
    save(wizard, "wizard_pull")

    wizard.pages.setCurrentIndex(APP)
    wizard.portal_url.setText(sim.url)
    wizard.client_id.setText(CLIENT_ID)
    wizard.client_secret.setText(SECRET)
    wizard.sign_in_button.click()
    wait_until(app, wizard.app_finish.isEnabled, what="browser sign-in")
    wizard.advanced.set_expanded(False)
    save(wizard, "wizard_app")

    wizard.pages.setCurrentIndex(PUSH)
    wizard.webhook.setText(sim.webhook_url)
    wizard.token.setText(sim.application_token)
    save(wizard, "wizard_push")
    wizard.reject()

    # the advanced part as a cloud user finds it: defaults shown, when to change them said
    fresh = FirstRunDialog(settings=config.from_mapping(
        {"storage": {"data_dir": str(_TMP / f"data-{lang}")}}, env={}), tokens=MemoryStore())
    fresh.show()
    fresh.pages.setCurrentIndex(APP)
    fresh.portal_url.setText("https://example.bitrix24.ru")
    fresh.client_id.setText(CLIENT_ID)
    fresh.client_secret.setText(SECRET)
    fresh.advanced.toggle.click()
    save(fresh, "wizard_app_advanced")
    fresh.reject()
    return written


def shoot_doctor(app: QApplication, monitor, out: Path, lang: str, name: str = "doctor") -> Path:
    dialog = DoctorDialog(monitor)
    dialog.resize(760, 480)
    dialog.show()
    wait_until(app, lambda: not dialog.running and bool(dialog.findings), what="doctor")
    app.processEvents()
    path = out / f"{name}_{lang}.png"
    dialog.grab().save(str(path))
    dialog.close()
    return path


def app_monitor(sim: PortalSimulator) -> Monitor:
    """A local application signed in, its tokens in the owner-only file (no keyring here), the
    offline events not bound yet: the doctor says where the tokens are and what to do."""
    issued = sim.issue_tokens(CLIENT_ID)
    tokens = FileStore(_TMP / "app-data" / "tokens.json")
    tokens.set(TOKENS_KEY, json.dumps({
        "access_token": issued["access_token"], "refresh_token": issued["refresh_token"],
        "expires": time.time() + 3600, "member_id": sim.member_id}))
    settings = config.from_mapping({
        "portal": {"client_id": CLIENT_ID, "portal_url": sim.url, "oauth_server": sim.url,
                   "allow_private_http": True, "offline_events": True},
        "listener": {"enabled": False},
        "storage": {"data_dir": str(_TMP / "app-data")},
    }, env={})
    return Monitor(settings, secrets=MemoryStore({CLIENT_SECRET_KEY: SECRET}), tokens=tokens,
                   listen=False)


def main(argv: list[str] | None = None) -> int:
    args, app, translations = start(__doc__, argv)
    sim = PortalSimulator().start("127.0.0.1", 0)
    sim.register_app(CLIENT_ID, SECRET)
    settings = config.from_mapping({
        "portal": {"webhook_url": sim.webhook_url},
        "listener": {"enabled": False},
        "storage": {"data_dir": str(_TMP / "data")},
        "sync": {"poll_seconds": 10},
    }, env={})
    controller = AppController(settings, MemoryStore())
    signed_in = app_monitor(sim)
    written: list[Path] = []
    try:
        controller.start()
        wait_until(app, lambda: controller.running and not controller.loading, what="start")
        wait_until(app, lambda: bool(controller.monitor.last_poll()), what="the first poll")
        for lang in ("ru", "en"):
            translations.install(lang)
            written += shoot_wizard(app, sim, args.out, lang)
            written.append(shoot_doctor(app, controller.monitor, args.out, lang))
            written.append(shoot_doctor(app, signed_in, args.out, lang, "doctor_app"))
    finally:
        controller.shutdown()
        signed_in.stop()
        sim.stop()
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
