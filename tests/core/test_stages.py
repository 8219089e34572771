"""The stage filter's matching rules."""

from __future__ import annotations

import pytest

from deal_monitor.bitrix.stages import StageFilter


@pytest.mark.parametrize(
    ("entries", "stage", "skipped"),
    [
        (["NEW"], "NEW", True),
        (["NEW"], "C1:NEW", True),  # a bare entry matches the stage in every pipeline
        (["NEW"], "C12:NEW", True),
        (["NEW"], "PREPARATION", False),
        (["NEW"], "C1:PREPARATION", False),
        (["C1:NEW"], "C1:NEW", True),  # a prefixed entry matches that pipeline only
        (["C1:NEW"], "NEW", False),
        (["C1:NEW"], "C2:NEW", False),
        (["C0:NEW"], "NEW", True),  # the general pipeline's stages have no prefix
        (["C0:NEW"], "C1:NEW", False),
        (["C2:UC_LAFJPE"], "C2:UC_LAFJPE", True),
        ([], "NEW", False),
    ],
)
def test_stage_filter(entries, stage, skipped):
    assert StageFilter(entries).skips(stage) is skipped
