"""Short secrets are masked as whole words; tracebacks of any thread go through redaction."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from deal_monitor.logs import MARK, SecretRegistry


def test_short_secrets_are_masked_where_they_stand_alone():
    registry = SecretRegistry()
    registry.add("k7Q", "abcdefgh")
    text = registry.redact("token=k7Q; token2 k7Q. k7Qx xk7Q abcdefghij")
    assert text == f"token={MARK}; token2 {MARK}. k7Qx xk7Q {MARK}ij"


def test_a_thread_traceback_goes_through_the_redacting_log(tmp_path):
    script = textwrap.dedent("""
        import threading
        from pathlib import Path
        from deal_monitor import logs
        logs.setup(Path(r"%s"), console=False)
        logs.secrets.add("s3cr3t-webhook-code")

        def boom():
            raise RuntimeError("failed with https://portal/rest/1/s3cr3t-webhook-code/x")

        t = threading.Thread(target=boom, name="doomed")
        t.start()
        t.join()
        raise ValueError("main thread: s3cr3t-webhook-code")
    """) % str(tmp_path)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    log_text = (tmp_path / "deal-monitor.log").read_text(encoding="utf-8")
    assert "uncaught exception in thread doomed" in log_text
    assert "RuntimeError" in log_text and "ValueError" in log_text
    assert "s3cr3t-webhook-code" not in log_text
    assert "s3cr3t-webhook-code" not in result.stderr  # nothing printed past the filter


def test_registering_many_short_values_keeps_long_ones_working():
    registry = SecretRegistry()
    registry.add(*[f"v{n}" for n in range(50)], "longsecretvalue")
    assert registry.redact("v7 and longsecretvalue and v77x") == f"{MARK} and {MARK} and v77x"
