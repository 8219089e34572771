"""The stage filter dialog writes entries the core reads as the planner meant them.

Every check goes through the core's StageFilter: a checked stage is skipped in its own
pipeline only, and bare entries from older settings files keep working.
"""

from __future__ import annotations

import tomllib

import pytest
from PySide6.QtCore import Qt

from deal_monitor.bitrix.stages import StageFilter
from deal_monitor.gui.stagefilter import (
    StageFilterDialog,
    legacy_entries,
    stage_entry,
    toggle_stages,
)

from .conftest import WAIT_MS, make_settings

pytestmark = pytest.mark.gui

KNOWN = ["NEW", "PREPARATION", "WON", "C1:NEW", "C1:EXECUTING", "C1:WON", "C2:NEW"]


def skipped(entries) -> set[str]:
    stage_filter = StageFilter(entries)
    return {s for s in KNOWN if stage_filter.skips(s)}


def test_stage_entry_names_one_pipeline():
    assert stage_entry("NEW") == "C0:NEW"
    assert stage_entry("C1:NEW") == "C1:NEW"
    assert StageFilter([stage_entry("NEW")]).skips("NEW")
    assert not StageFilter([stage_entry("NEW")]).skips("C1:NEW")


def test_checking_a_general_pipeline_stage_skips_it_there_only():
    entries, _ = toggle_stages([], KNOWN, {"NEW": True})
    assert entries == ["C0:NEW"]
    assert StageFilter(entries).skips("NEW")
    assert not StageFilter(entries).skips("C1:NEW")
    assert not StageFilter(entries).skips("C2:NEW")


def test_checking_a_stage_of_another_pipeline_skips_it_there_only():
    entries, _ = toggle_stages([], KNOWN, {"C1:NEW": True})
    assert entries == ["C1:NEW"]
    assert skipped(entries) == {"C1:NEW"}
    # the general NEW next to it stays its own choice
    entries, _ = toggle_stages(entries, KNOWN, {"NEW": True})
    assert skipped(entries) == {"NEW", "C1:NEW"}
    entries, _ = toggle_stages(entries, KNOWN, {"C1:NEW": False})
    assert skipped(entries) == {"NEW"}


def test_a_whole_pipeline_at_once():
    entries, _ = toggle_stages([], KNOWN, {"NEW": True, "PREPARATION": True, "WON": True})
    assert skipped(entries) == {"NEW", "PREPARATION", "WON"}
    entries, _ = toggle_stages(entries, KNOWN, {"NEW": False, "PREPARATION": False, "WON": False})
    assert entries == []


def test_legacy_bare_entry_is_kept_when_nothing_changes():
    entries, expanded = toggle_stages(["NEW"], KNOWN, {})
    assert entries == ["NEW"] and not expanded
    # a change elsewhere keeps it too, and it still covers every pipeline (even new ones)
    entries, expanded = toggle_stages(["NEW"], KNOWN, {"C1:EXECUTING": True})
    assert "NEW" in entries and not expanded
    assert skipped(entries) == {"NEW", "C1:NEW", "C2:NEW", "C1:EXECUTING"}
    assert StageFilter(entries).skips("C9:NEW")
    # checking a stage it already covers changes nothing
    entries, _ = toggle_stages(["NEW"], KNOWN, {"C1:NEW": True})
    assert entries == ["NEW"]


def test_unchecking_one_stage_of_a_legacy_entry_keeps_the_others_skipped():
    entries, expanded = toggle_stages(["NEW"], KNOWN, {"C1:NEW": False})
    assert expanded
    assert "NEW" not in entries
    assert skipped(entries) == {"NEW", "C2:NEW"}
    assert StageFilter(entries).skips("NEW") and not StageFilter(entries).skips("C1:NEW")

    entries, expanded = toggle_stages(["NEW"], KNOWN, {"NEW": False})
    assert expanded
    assert skipped(entries) == {"C1:NEW", "C2:NEW"}

    # unchecking all of them drops the entry
    entries, _ = toggle_stages(["NEW"], KNOWN, {"NEW": False, "C1:NEW": False, "C2:NEW": False})
    assert entries == []


def test_entries_for_stages_the_portal_no_longer_has_are_kept():
    entries, _ = toggle_stages(["C7:OLD", "GONE"], KNOWN, {"C1:EXECUTING": True})
    assert set(entries) == {"C7:OLD", "GONE", "C1:EXECUTING"}
    entries, _ = toggle_stages(entries, KNOWN, {"C1:EXECUTING": False})
    assert entries == ["C7:OLD", "GONE"]


def test_explicit_general_entry_from_the_file_is_understood():
    assert skipped(["C0:WON"]) == {"WON"}
    entries, expanded = toggle_stages(["C0:WON"], KNOWN, {"C1:WON": True})
    assert skipped(entries) == {"WON", "C1:WON"} and not expanded
    entries, _ = toggle_stages(entries, KNOWN, {"WON": False})
    assert entries == ["C1:WON"]


def test_legacy_entries_are_recognised():
    assert legacy_entries(["NEW", "C0:WON", "C1:NEW", "GONE"], KNOWN) == ["NEW"]
    assert legacy_entries(["C0:NEW"], KNOWN) == []


# -- the dialog against the simulator's portal (pipelines 0 and 1 both have NEW) -------------------

@pytest.fixture
def stage_dialog(qtbot, sim, tmp_path, start_controller):
    def make(skip_stages):
        settings = make_settings(tmp_path, sim, sync={"skip_stages": list(skip_stages)})
        controller = start_controller(settings)
        dialog = StageFilterDialog(controller)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitUntil(lambda: dialog.stage_item("C1:NEW") is not None, timeout=WAIT_MS)
        return controller, dialog

    return make


def checked(dialog, stage_id: str) -> bool:
    return dialog.stage_item(stage_id).checkState(0) == Qt.CheckState.Checked


def saved_entries(tmp_path) -> list[str]:
    saved = tomllib.loads((tmp_path / "deal-monitor.toml").read_text(encoding="utf-8"))
    return saved["sync"]["skip_stages"]


def test_dialog_checking_general_new_affects_pipeline_0_only(stage_dialog, tmp_path):
    controller, dialog = stage_dialog([])
    assert not checked(dialog, "NEW") and not checked(dialog, "C1:NEW")
    assert not dialog.legacy.isVisible()
    dialog.stage_item("NEW").setCheckState(0, Qt.CheckState.Checked)  # as a click does
    assert controller.skip_stages == ("C0:NEW",)
    assert controller.monitor.stage_filter.skips("NEW")
    assert not controller.monitor.stage_filter.skips("C1:NEW")
    assert checked(dialog, "NEW") and not checked(dialog, "C1:NEW")
    entries = saved_entries(tmp_path)
    assert StageFilter(entries).skips("NEW") and not StageFilter(entries).skips("C1:NEW")


def test_dialog_shows_a_legacy_entry_in_every_pipeline(stage_dialog):
    controller, dialog = stage_dialog(["NEW"])
    assert checked(dialog, "NEW") and checked(dialog, "C1:NEW")
    assert dialog.legacy.isVisible()
    # a change elsewhere leaves the old entry as it was
    dialog.stage_item("C1:EXECUTING").setCheckState(0, Qt.CheckState.Checked)
    assert "NEW" in controller.skip_stages
    assert checked(dialog, "NEW") and checked(dialog, "C1:NEW")


def test_dialog_unchecking_one_pipeline_of_a_legacy_entry(stage_dialog, tmp_path):
    controller, dialog = stage_dialog(["NEW"])
    dialog.stage_item("C1:NEW").setCheckState(0, Qt.CheckState.Unchecked)
    stage_filter = StageFilter(controller.skip_stages)
    assert stage_filter.skips("NEW") and not stage_filter.skips("C1:NEW")
    assert checked(dialog, "NEW") and not checked(dialog, "C1:NEW")
    assert not dialog.legacy.isVisible(), "the bare entry is gone"
    entries = saved_entries(tmp_path)
    assert "NEW" not in entries
    assert StageFilter(entries).skips("NEW") and not StageFilter(entries).skips("C1:NEW")


def test_dialog_whole_pipeline_checkbox(stage_dialog):
    controller, dialog = stage_dialog([])
    top = dialog.stage_item("C1:NEW").parent()
    top.setCheckState(0, Qt.CheckState.Checked)
    stage_filter = StageFilter(controller.skip_stages)
    assert all(e.startswith("C1:") for e in controller.skip_stages)
    assert stage_filter.skips("C1:WON") and not stage_filter.skips("WON")
    assert not checked(dialog, "NEW")
