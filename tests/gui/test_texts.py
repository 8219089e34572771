"""Settings problems and connection-test errors reach the window in the UI language.

The core reports them in English (``ConfigError.problem``, the Test buttons' strings); every
problem the config check can produce must have a translation entry in ``texts``, so a new
message in ``config.py`` fails here instead of showing up in English in the Russian dialog.
"""

from __future__ import annotations

import ast
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QTranslator

from deal_monitor import config, service
from deal_monitor.config import ConfigError
from deal_monitor.gui import texts

pytestmark = pytest.mark.gui

ROOT = Path(config.__file__).resolve().parent

BAD = [
    {"nope": {}},
    {"portal": 1},
    {"portal": {"foo": "bar"}},
    {"listener": {"enabled": "yes"}},
    {"listener": {"port": "80"}},
    {"sync": {"debounce_seconds": "1"}},
    {"portal": {"plan": 1}},
    {"mapping": {"columns": {"a": 1}}},
    {"sync": {"skip_stages": "NEW"}},
    {"portal": {"plan": "gold"}},
    {"portal": {"webhook_url": "ftp://portal.example/rest/1/abc/"}},
    {"portal": {"webhook_url": "https://portal.example/not-a-webhook"}},
    {"portal": {"portal_url": "portal.example"}},
    {"portal": {"client_id": "app.1"}},
    {"portal": {"offline_events": True}},
    {"portal": {"member_id": "xyz"}},
    {"listener": {"port": 70000}},
    {"listener": {"path": "/healthz"}},
    {"listener": {"path": "events"}},
    {"listener": {"public_url": "http://deals.example.com/bitrix24/events"}},
    {"listener": {"public_url": "https://localhost/bitrix24/events"}},
    {"listener": {"allow_networks": ["nonsense"]}},
    {"listener": {"trusted_proxy": "proxy"}},
    {"sync": {"skip_stages": ["C1:NEW", "bad stage"]}},
    {"sync": {"debounce_seconds": 61.0, "max_delay_seconds": 100.0}},
    {"sync": {"debounce_seconds": 5.0, "max_delay_seconds": 1.0}},
    {"sync": {"reconcile_minutes": -1.0}},
    {"sync": {"max_attempts": 0}},
    {"target": {"table": "bad table"}},
    {"target": {"url": "production.db"}},
    {"storage": {"state_url": "state.db"}},
    {"mapping": {"key_column": "bad col"}},
    {"mapping": {"product_table": "1st"}},
    {"mapping": {"preset": "custom", "columns": {"bad col": "field:ID"}}},
    {"mapping": {"preset": "fancy"}},
    {"mapping": {"preset": "custom"}},
    {"mapping": {"preset": "custom", "columns": {"a": "nonsense"}}},
    {"mapping": {"preset": "custom", "columns": {"a": "field:"}}},
    {"mapping": {"preset": "custom", "columns": {"a": "template:{oops"}}},
    {"mapping": {"preset": "custom", "columns": {"a": "lookup:nope"}}},
    {"mapping": {"products": True, "product_columns": {"qty": "nonsense"}}},
]


def problem_of(data) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        config.from_mapping(data, env={})
    return caught.value


def all_problems(tmp_path: Path) -> list[ConfigError]:
    errors = [problem_of(data) for data in BAD]
    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path / "missing.toml", env={})
    errors.append(caught.value)
    broken = tmp_path / "broken.toml"
    broken.write_text("[portal\nplan = ", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config.load(broken, env={})
    errors.append(caught.value)
    return errors


def known(problem: str) -> bool:
    return problem in texts.CONFIG_PROBLEMS or any(
        pattern.fullmatch(problem) for pattern in texts.CONFIG_PROBLEM_PATTERNS)


def test_every_problem_of_bad_settings_has_a_translation_entry(tmp_path):
    errors = all_problems(tmp_path)
    unknown = [f"{e.key}: {e.problem}" for e in errors if not known(e.problem)]
    assert unknown == [], "add these to texts.py (and the .ts): " + "; ".join(unknown)
    # the bad inputs really are different problems, not the same one over and over
    assert len({e.problem for e in errors}) >= 35


def _literal_messages(path: Path, exception: str) -> Iterator[str]:
    """The message argument of every ``exception(...)`` call in ``path``, values as ``X``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == exception and node.args):
            continue
        arg = node.args[-1]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            yield arg.value
        elif isinstance(arg, ast.JoinedStr):
            yield "".join(v.value if isinstance(v, ast.Constant) else "X" for v in arg.values)


def test_every_problem_written_in_the_core_has_a_translation_entry():
    """A new ``ConfigError``/``MappingError`` text in the core must be added to texts.py."""
    problems = list(_literal_messages(ROOT / "config.py", "ConfigError"))
    assert len(problems) > 25
    for name in ("spec.py", "presets.py"):
        for message in _literal_messages(ROOT / "mapping" / name, "MappingError"):
            # "column X: problem" and "mapping.key: problem" become ConfigError(key, problem)
            problems.append(message.split(": ", 1)[1])
    unknown = [p for p in problems if not known(p)]
    assert unknown == [], "add these to texts.py (and the .ts): " + "; ".join(unknown)


def test_config_problem_text_is_english_in_the_english_ui(tmp_path):
    for error in all_problems(tmp_path):
        assert texts.config_problem_text(error.key, error.problem) == error.problem
    assert texts.config_problem_text("x.y", "something new") == "something new"


class MarkingTranslator(QTranslator):
    """Stands in for the Russian translation: marks every text of the "Texts" context."""

    def translate(self, context, source, disambiguation=None, n=-1):  # noqa: ARG002
        return f"[ru] {source}" if context == "Texts" else ""

    def isEmpty(self) -> bool:
        return False


@pytest.fixture
def marked(qapp) -> Iterator[None]:
    translator = MarkingTranslator()
    QCoreApplication.installTranslator(translator)
    texts.clear_cache()
    try:
        yield
    finally:
        QCoreApplication.removeTranslator(translator)
        texts.clear_cache()


def test_config_problems_are_translated(marked, tmp_path):
    for error in all_problems(tmp_path):
        text = texts.config_problem_text(error.key, error.problem)
        assert text.startswith("[ru] "), f"{error.key}: {error.problem}"
    assert texts.config_problem_text("portal.plan", "must be one of standard, enterprise") == (
        "[ru] must be one of standard, enterprise")
    assert texts.config_problem_text("x.y", "something new") == "something new"


def test_test_button_errors_are_translated(marked, tmp_path):
    # the webhook check reports the config problem as it is
    problem = service.check_webhook_url("https://portal.example/not-a-webhook")
    assert texts.error_text(problem) == (
        "[ru] must look like https://<portal>/rest/<user id>/<secret>/")
    # a URL SQLAlchemy cannot use
    problem = service.check_target_url("nonsense://nowhere")
    assert problem.startswith("cannot use this URL: ")
    assert texts.error_text(problem).startswith("[ru] ")
    # a database that cannot be opened: the message and the hint after it
    problem = service.check_target_url(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    text = texts.error_text(problem)
    assert text.startswith("[ru] production database: ")
    assert text.endswith("[ru] Check that the target database is running and the URL in the "
                         "settings is right.")
    # a port someone else holds
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        problem = service.check_listen("127.0.0.1", holder.getsockname()[1])
    assert problem.startswith("cannot listen on 127.0.0.1:")
    assert texts.error_text(problem).startswith("[ru] cannot listen on 127.0.0.1:")


def test_portal_errors_with_their_hints(marked):
    text = texts.error_text("NO_AUTH_FOUND: Wrong authorization data The webhook URL is wrong "
                            "or was revoked: create a new inbound webhook.")
    assert text == ("[ru] The webhook URL is wrong or was revoked: create a new inbound webhook. "
                    "(NO_AUTH_FOUND: Wrong authorization data)")
    text = texts.error_text("NETWORK_ERROR: ConnectionError: refused The portal did not answer: "
                            "check the network connection.")
    assert text.startswith("[ru] The portal did not answer")
    assert texts.error_text("NETWORK_ERROR: ConnectionError: refused").startswith(
        "[ru] no connection to the portal (NETWORK_ERROR")
    assert texts.hint_text("Authorize the app again in the settings.") == (
        "[ru] Authorize the app again in the settings.")
    # an unknown error keeps its words, a known hint after it is still translated
    assert texts.error_text("something new Authorize the app again in the settings.") == (
        "something new [ru] Authorize the app again in the settings.")
    assert texts.error_text("something new") == "something new"


def test_table_errors_are_translated(marked):
    cases = {
        "target table deal lacks columns: title, stage_id Point the app at another table, or "
        "add the columns.": "[ru] target table deal lacks columns: title, stage_id [ru] Point "
                            "the app at another table, or add the columns.",
        "target table orders does not exist Create the table, or pick the default preset, which "
        "creates its own.": "[ru] target table orders does not exist "
                            "[ru] Create the table, or pick the default preset, which creates "
                            "its own.",
        "target table deal: column x is missing Fix the mapping: map only columns the table has, "
        "with a fitting conversion.": "target table deal: column x is missing [ru] Fix the "
                                      "mapping: map only columns the table has, with a fitting "
                                      "conversion.",
        "state database was corrupt; moved aside, full reconciliation follows":
            "[ru] state database was corrupt; moved aside, full reconciliation follows",
    }
    for error, expected in cases.items():
        assert texts.error_text(error) == expected


def test_english_texts_keep_the_core_words():
    assert texts.error_text("must look like https://<portal>/rest/<user id>/<secret>/") == (
        "must look like https://<portal>/rest/<user id>/<secret>/")
    assert texts.error_text("NO_AUTH_FOUND: Wrong authorization data").startswith(
        "the webhook URL is wrong or was revoked")
    for error in (
        "cannot use this URL: ArgumentError: Could not parse SQLAlchemy URL",
        "cannot listen on 127.0.0.1:8765: Address already in use Another program may use this "
        "port: choose another port or stop that program.",
        "target table deal lacks columns: title Point the app at another table, or add the "
        "columns.",
        "product table deal_product lacks columns: qty Add the columns, or change "
        "mapping.product_columns.",
        "unsupported target database: oracle",
        "not started",
    ):
        assert texts.error_text(error) == error
