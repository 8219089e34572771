"""The settings' mapping page: which deal data goes into which column of the production table.

The page reads the target table's columns (reflection, off the GUI thread) and offers only
those; for each column the planner picks a source — a deal field (listed with the portal's
labels from ``crm.deal.fields``), a template, a constant or a lookup — and a conversion. The
core's mapping check runs on every change: errors (a missing column, a required column left
out, a date into a number column) block saving, warnings are shown. "Dry run" tries the
mapping as edited on real deals without writing anything.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..config import ConfigError, MappingSettings
from ..mapping import MappingError, build_mapping, parse_source
from ..mapping.check import ColumnShape, MappingProblem, check_mapping
from ..mapping.presets import DEFAULT_COLUMNS, SEED_COLUMNS
from ..mapping.spec import LOOKUPS, ColumnSource
from . import icons, texts
from .tasks import run_in_background
from .widgets import InlineMessage, bold

KINDS = ("", "field", "template", "const", "lookup")
CONVERSIONS = ("", "text", "int", "decimal", "date", "datetime", "bool", "plain")
# the conversion a field gets when it is picked for a column of this kind
_SUGGESTED = {"int": "int", "decimal": "decimal", "float": "decimal", "date": "date",
              "datetime": "datetime", "bool": "bool", "text": "text"}
# standard deal fields, offered while the portal's own list is not loaded
STANDARD_FIELDS = ("ID", "TITLE", "STAGE_ID", "CATEGORY_ID", "OPPORTUNITY", "CURRENCY_ID",
                   "CLOSEDATE", "BEGINDATE", "COMMENTS", "ASSIGNED_BY_ID", "COMPANY_ID",
                   "CONTACT_ID", "DATE_CREATE", "DATE_MODIFY", "CLOSED", "SOURCE_ID")

COL_NAME, COL_TYPE, COL_KIND, COL_VALUE, COL_CONVERT, COL_CHECK = range(6)




def kind_label(kind: str) -> str:
    return {
        "": QCoreApplication.translate("MappingPage", "— not written —"),
        "field": QCoreApplication.translate("MappingPage", "Deal field"),
        "template": QCoreApplication.translate("MappingPage", "Template"),
        "const": QCoreApplication.translate("MappingPage", "Constant"),
        "lookup": QCoreApplication.translate("MappingPage", "Name from the portal"),
    }[kind]


def conversion_label(convert: str) -> str:
    return {
        "": QCoreApplication.translate("MappingPage", "as sent"),
        "text": QCoreApplication.translate("MappingPage", "text"),
        "int": QCoreApplication.translate("MappingPage", "whole number"),
        "decimal": QCoreApplication.translate("MappingPage", "exact decimal (money)"),
        "date": QCoreApplication.translate("MappingPage", "date (the portal's day)"),
        "datetime": QCoreApplication.translate("MappingPage", "date and time (UTC)"),
        "bool": QCoreApplication.translate("MappingPage", "Y/N → yes/no"),
        "plain": QCoreApplication.translate("MappingPage", "BB-code → plain text"),
    }[convert]


def lookup_label(name: str) -> str:
    return {
        "stage_name": QCoreApplication.translate("MappingPage", "Stage name"),
        "pipeline_name": QCoreApplication.translate("MappingPage", "Pipeline name"),
        "user_name": QCoreApplication.translate("MappingPage", "Responsible person's name"),
    }[name]


def problem_text(problem: MappingProblem) -> str:
    """A mapping problem in the UI language."""
    p = problem.params
    found = {
        "missing_column": lambda: QCoreApplication.translate("MappingPage", "the table has no such column"),
        "missing_key": lambda: QCoreApplication.translate("MappingPage", "the key column is not in the table"),
        "bad_key_type": lambda: QCoreApplication.translate("MappingPage", "this column cannot hold deal IDs"),
        "no_single_key": lambda: QCoreApplication.translate("MappingPage",
            "the table needs a single-column primary key for the link table, or choose a key "
            "column that holds the deal ID"),
        "key_not_generated": lambda: QCoreApplication.translate("MappingPage",
            "the primary key is not filled by the database: choose a key column that holds "
            "the deal ID"),
        "key_mapped": lambda: QCoreApplication.translate("MappingPage", "this is the key column: it cannot also get a source"),
        "required_unmapped": lambda: QCoreApplication.translate("MappingPage",
            "the table requires a value here (NOT NULL without a default): choose a source"),
        "type_mismatch": lambda: QCoreApplication.translate("MappingPage", "a %1 cannot be written into a %2 column")
        .replace("%1", value_kind_label(p[0])).replace("%2", value_kind_label(p[1])),
        "fraction_lost": lambda: QCoreApplication.translate("MappingPage", "the column holds whole numbers: kopecks are rounded away"),
        "time_lost": lambda: QCoreApplication.translate("MappingPage", "the column holds dates: the time of day is dropped"),
        "needs_conversion": lambda: QCoreApplication.translate("MappingPage",
            "the value goes in as text and the database converts it: better choose a conversion"),
        "too_long": lambda: QCoreApplication.translate("MappingPage", "%1 characters, the column holds %2")
        .replace("%1", p[0]).replace("%2", p[1]),
        "null_in_required": lambda: QCoreApplication.translate("MappingPage", "the value is empty but the column does not allow NULL"),
    }.get(problem.code)
    return found() if found else problem.text


def value_kind_label(kind: str) -> str:
    return {
        "text": QCoreApplication.translate("MappingPage", "text"), "int": QCoreApplication.translate("MappingPage", "whole number"), "decimal": QCoreApplication.translate("MappingPage", "decimal number"),
        "float": QCoreApplication.translate("MappingPage", "decimal number"), "date": QCoreApplication.translate("MappingPage", "date"), "datetime": QCoreApplication.translate("MappingPage", "date and time"),
        "bool": QCoreApplication.translate("MappingPage", "yes/no value"), "other": QCoreApplication.translate("MappingPage", "value"),
    }.get(kind, kind)


def source_text(kind: str, value: str, convert: str) -> str:
    """The config's one-string form of a source (``field:OPPORTUNITY|decimal``)."""
    if kind == "lookup" and value.startswith("user_name"):
        value = value if ":" in value else "user_name:ASSIGNED_BY_ID"
    return f"{kind}:{value}" + (f"|{convert}" if convert else "")


class MappingPage(QWidget):
    """Edit ``[mapping]`` against the target table's real columns."""

    changed = Signal()
    dry_run_requested = Signal()

    def __init__(self, mapping: MappingSettings, table: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._table_name = table
        self._shapes: list[ColumnShape] | None = None  # None: not read (yet)
        self._rows: list[ColumnShape] = []  # the table's rows: the columns, then missing ones
        self._fields: list[tuple[str, str, str]] = []
        self._sources: dict[str, ColumnSource] = {}
        self._loading = False
        self._tasks = []
        self.problems: list[MappingProblem] = []
        self.read_error = ""

        self.preset = QComboBox(self)
        self.preset.addItem(self.tr("Default table (the app creates and owns it)"), "default")
        self.preset.addItem(self.tr("Seed-compatible: deal(name, date, amount, comment, "
                                    "accounting)"), "seed")
        self.preset.addItem(self.tr("The warehouse's own table: choose per column"), "custom")
        self.preset_note = QLabel(self)
        self.preset_note.setWordWrap(True)
        self.preset_note.setStyleSheet("color: #5B6675;")
        self.read_button = QPushButton(icons.icon("resync"), self.tr("Read the table"), self)
        self.read_button.setToolTip(self.tr("Read the table's columns from the database again"))
        self.read_button.clicked.connect(lambda: self.read_table())
        self.read_msg = InlineMessage(self)

        self.columns = QTableWidget(0, 6, self)
        self.columns.setHorizontalHeaderLabels([
            self.tr("Column"), self.tr("Type"), self.tr("Source"), self.tr("Value"),
            self.tr("Conversion"), self.tr("Check")])
        self.columns.verticalHeader().setVisible(False)
        self.columns.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.columns.setAlternatingRowColors(True)
        header = self.columns.horizontalHeader()
        for column, mode in ((COL_NAME, QHeaderView.ResizeMode.ResizeToContents),
                             (COL_TYPE, QHeaderView.ResizeMode.ResizeToContents),
                             (COL_KIND, QHeaderView.ResizeMode.ResizeToContents),
                             (COL_VALUE, QHeaderView.ResizeMode.Stretch),
                             (COL_CONVERT, QHeaderView.ResizeMode.ResizeToContents),
                             (COL_CHECK, QHeaderView.ResizeMode.Interactive)):
            header.setSectionResizeMode(column, mode)
        header.resizeSection(COL_CHECK, 200)
        self.columns.setMinimumHeight(240)

        self.key = QComboBox(self)
        self.key.currentIndexChanged.connect(self._edited)
        self.products = QCheckBox(self.tr("Also write the deal's product rows into table"), self)
        self.products.setChecked(mapping.products)
        self.products.toggled.connect(self._edited)
        self.product_table = QLineEdit(mapping.product_table, self)
        self.product_table.setEnabled(mapping.products)
        self.products.toggled.connect(self.product_table.setEnabled)
        self.product_table.textChanged.connect(self._edited)
        self.summary = InlineMessage(self)
        self.dry_run_button = QPushButton(icons.icon("preview"), self.tr("Dry run…"), self)
        self.dry_run_button.setToolTip(self.tr(
            "Show what this mapping would write for real deals, without writing anything"))
        self.dry_run_button.clicked.connect(self.dry_run_requested)

        top = QHBoxLayout()
        top.addWidget(QLabel(self.tr("Preset"), self))
        top.addWidget(self.preset, 1)
        top.addWidget(self.read_button)
        key_row = QHBoxLayout()
        key_row.addWidget(QLabel(self.tr("Rows are found by"), self))
        key_row.addWidget(self.key, 1)
        products_row = QHBoxLayout()
        products_row.addWidget(self.products)
        products_row.addWidget(self.product_table, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.summary, 1)
        bottom.addWidget(self.dry_run_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.preset_note)
        layout.addWidget(self.read_msg)
        layout.addWidget(self.columns, 1)
        layout.addLayout(key_row)
        layout.addLayout(products_row)
        layout.addLayout(bottom)

        self._key_column = mapping.key_column
        self._load_sources(mapping)
        self.preset.setCurrentIndex(max(0, self.preset.findData(mapping.preset)))
        self._last_preset = self.preset_name
        self.preset.currentIndexChanged.connect(self._preset_changed)
        self._show_preset()

    # -- what the page holds ---------------------------------------------------------------------
    @property
    def preset_name(self) -> str:
        return str(self.preset.currentData())

    def _load_sources(self, mapping: MappingSettings) -> None:
        columns = {"default": DEFAULT_COLUMNS, "seed": SEED_COLUMNS}.get(mapping.preset,
                                                                        mapping.columns)
        self._sources = {}
        for name, text in columns.items():
            try:
                self._sources[name] = parse_source(name, text)
            except MappingError:
                continue

    def mapping_settings(self, base: MappingSettings) -> MappingSettings:
        """The ``[mapping]`` section as edited (validated by Settings.replace)."""
        import dataclasses

        preset = self.preset_name
        columns = {} if preset != "custom" else self._edited_sources()
        return dataclasses.replace(
            base, preset=preset,
            key_column=str(self.key.currentData() or "") if preset == "custom" else "",
            columns=columns, products=self.products.isChecked(),
            product_table=self.product_table.text().strip() or "deal_product")

    def _edited_sources(self) -> dict[str, str]:
        if self._shapes is None:  # the table was not read: keep what the settings had
            return {name: source_text(s.kind, _value_of(s), s.convert)
                    for name, s in self._sources.items()}
        result = {}
        for row in range(self.columns.rowCount()):
            name = self.columns.item(row, COL_NAME).text()
            kind = self.columns.cellWidget(row, COL_KIND).currentData()
            if not kind:
                continue
            value = self._value(row)
            convert = self.columns.cellWidget(row, COL_CONVERT).currentData()
            result[name] = source_text(kind, value, convert)
        return result

    def _value(self, row: int) -> str:
        editor = self.columns.cellWidget(row, COL_VALUE)
        if isinstance(editor, QComboBox):
            data = editor.currentData()
            if data is not None and editor.currentText() == editor.itemText(editor.currentIndex()):
                return str(data)
            return editor.currentText().strip()
        if isinstance(editor, QLineEdit):
            return editor.text()
        return ""

    # -- presets ------------------------------------------------------------------------------------
    def _preset_changed(self) -> None:
        preset, before = self.preset_name, self._last_preset
        self._last_preset = preset
        if preset in ("default", "seed"):
            self._load_sources(MappingSettings(preset=preset))
        elif before == "default":
            self._sources = {}  # the default table's columns mean nothing in another table
        elif self._shapes is not None:
            self._sources = {name: parse_source(name, text)
                             for name, text in self._edited_sources().items()}
        self._show_preset()

    def _show_preset(self, refill: bool = True) -> None:
        preset = self.preset_name
        notes = {
            "default": self.tr(
                "Deal Monitor creates the table “%1” with one row per deal (bitrix_id, title, "
                "stage, amount, close date, ...). Nothing to map."),
            "seed": self.tr(
                "For the seed's existing table: name = “Сделка №{ID} — {TITLE}”, date = close "
                "date, amount, comment, accounting = 1. Rows are found by deal ID through the "
                "link table “%1_link”, never by the name. Change any column to make it your own."),
            "custom": self.tr(
                "Pick a source for each column of the existing table “%1”. Columns in bold need "
                "a value in every new row; columns without a source are left alone."),
        }
        self.preset_note.setText(notes[preset].replace("%1", self._table_name))
        editable = preset != "default"
        self.columns.setVisible(editable)
        self.read_button.setVisible(editable)
        self.key.setEnabled(preset == "custom")
        if editable and self._shapes is not None and refill:
            self._fill_table()
        self._check()
        self.changed.emit()

    # -- reading the table --------------------------------------------------------------------------
    def set_table(self, table: str, force: bool = False) -> None:
        """The settings' table (or database) changed: the columns read before no longer apply."""
        if table == self._table_name and not force:
            return
        if self._shapes is not None and self.preset_name == "custom":
            self._sources = {name: parse_source(name, text)
                             for name, text in self._edited_sources().items()}
        self._table_name = table
        self._shapes = None
        self.read_error = ""
        self.read_msg.clear_message()
        self.columns.setRowCount(0)
        self._show_preset()

    def read_table(self) -> None:
        """Read the columns off the GUI thread (the reader gives the call to make)."""
        if self._reader is None:
            return
        reader = self._reader()
        self.read_msg.show_busy(self.tr("Reading the table's columns…"))
        self.read_button.setEnabled(False)
        self._tasks.append(run_in_background(reader, self._on_read, self._on_read_failed,
                                             name="reflect", owner=self))

    _reader = None

    def set_reader(self, reader) -> None:
        """``reader()`` (on the GUI thread) returns a call that returns the columns or None."""
        self._reader = reader

    @property
    def table_read(self) -> bool:
        return self._shapes is not None

    def _on_read(self, shapes: list[ColumnShape] | None) -> None:
        self.read_button.setEnabled(True)
        if shapes is None:
            self.read_error = self.tr("The table “%1” does not exist in this database.").replace(
                "%1", self._table_name)
            self.read_msg.show_error(self.read_error)
            self._shapes = None
            self.columns.setRowCount(0)
        else:
            self.read_error = ""
            self.read_msg.clear_message()
            self._shapes = shapes
            self._fill_table()
        self._check()

    def _on_read_failed(self, exc: Exception) -> None:
        self.read_button.setEnabled(True)
        self.read_error = texts.error_text(str(exc))
        self.read_msg.show_error(self.tr("Cannot read the table: %1").replace("%1", self.read_error))
        self._check()

    def set_fields(self, fields: list[tuple[str, str, str]]) -> None:
        """The portal's deal fields (code, label, type), offered in the field lists."""
        self._fields = fields
        if self._shapes is not None:
            self._fill_table()

    # -- the column table ---------------------------------------------------------------------------
    def _fill_table(self) -> None:
        assert self._shapes is not None
        self._loading = True
        present = {shape.name for shape in self._shapes}
        # mapped columns the table lacks stay listed, marked, until the planner drops them
        self._rows = [*self._shapes, *(ColumnShape(name, "", "other") for name in self._sources
                                       if name not in present)]
        self.columns.setRowCount(len(self._rows))
        for row, shape in enumerate(self._rows):
            name = QTableWidgetItem(shape.name)
            name.setFlags(Qt.ItemFlag.ItemIsEnabled)
            if shape.primary_key:
                name.setIcon(icons.icon("key"))
            kind = QTableWidgetItem(shape.type_name or self.tr("not in the table"))
            kind.setFlags(Qt.ItemFlag.ItemIsEnabled)
            if shape.required:  # bold: every new row needs a value here
                name.setFont(bold(name.font()))
                name.setToolTip(self.tr("required"))
                kind.setToolTip(self.tr("required"))
            self.columns.setItem(row, COL_NAME, name)
            self.columns.setItem(row, COL_TYPE, kind)
            source = self._sources.get(shape.name)
            kinds = QComboBox(self.columns)
            for k in KINDS:
                kinds.addItem(kind_label(k), k)
            kinds.setCurrentIndex(max(0, kinds.findData(source.kind if source else "")))
            kinds.currentIndexChanged.connect(lambda _i, r=row: self._kind_changed(r))
            self.columns.setCellWidget(row, COL_KIND, kinds)
            converts = QComboBox(self.columns)
            for c in CONVERSIONS:
                converts.addItem(conversion_label(c), c)
            converts.setCurrentIndex(max(0, converts.findData(source.convert if source else "")))
            converts.currentIndexChanged.connect(self._edited)
            self.columns.setCellWidget(row, COL_CONVERT, converts)
            self._make_value_editor(row, source)
            self.columns.setItem(row, COL_CHECK, QTableWidgetItem(""))
        self._fill_keys()
        self._loading = False
        self.columns.resizeRowsToContents()

    def _fill_keys(self) -> None:
        current = str(self.key.currentData() or self._key_column or "")
        self.key.blockSignals(True)
        self.key.clear()
        self.key.addItem(self.tr("the app's link table “%1_link” (the table's primary key)")
                         .replace("%1", self._table_name), "")
        for shape in self._shapes or []:
            self.key.addItem(self.tr("column “%1”, which holds the deal ID").replace("%1", shape.name),
                             shape.name)
        self.key.setCurrentIndex(max(0, self.key.findData(current)))
        self.key.blockSignals(False)

    def _make_value_editor(self, row: int, source: ColumnSource | None) -> None:
        kind = source.kind if source else ""
        if kind == "field":
            editor = QComboBox(self.columns)
            editor.setEditable(True)
            known = self._fields or [(code, "", "") for code in STANDARD_FIELDS]
            for code, label, _type in known:
                editor.addItem(f"{label} ({code})" if label and label != code else code, code)
            index = editor.findData(source.value)
            if index >= 0:
                editor.setCurrentIndex(index)
            else:
                editor.setEditText(source.value)
            editor.lineEdit().setCursorPosition(0)  # the label's start, not its end
            editor.currentIndexChanged.connect(lambda _i, r=row: self._field_picked(r))
            editor.editTextChanged.connect(self._edited)
        elif kind == "lookup":
            editor = QComboBox(self.columns)
            for name in LOOKUPS:
                editor.addItem(lookup_label(name), name)
            editor.setCurrentIndex(max(0, editor.findData(source.value)))
            editor.currentIndexChanged.connect(self._edited)
        elif kind in ("template", "const"):
            editor = QLineEdit(source.value, self.columns)
            editor.setCursorPosition(0)
            editor.setPlaceholderText("Сделка №{ID} — {TITLE}" if kind == "template" else "1")
            editor.textChanged.connect(self._edited)
        else:
            editor = QLabel("", self.columns)
        self.columns.setCellWidget(row, COL_VALUE, editor)

    def _kind_changed(self, row: int) -> None:
        kind = self.columns.cellWidget(row, COL_KIND).currentData()
        shape = self._rows[row]
        value = {"field": "TITLE", "lookup": "stage_name", "template": "", "const": ""}.get(kind, "")
        convert = ""
        if kind == "field":
            convert = _SUGGESTED.get(shape.kind, "")
        elif kind == "const" and shape.kind in ("int", "decimal", "bool"):
            convert = _SUGGESTED[shape.kind]
        self.columns.cellWidget(row, COL_CONVERT).setCurrentIndex(
            max(0, self.columns.cellWidget(row, COL_CONVERT).findData(convert)))
        self._make_value_editor(row, ColumnSource(kind, value, convert) if kind else None)
        self._edited()

    def _field_picked(self, row: int) -> None:
        if self._loading:
            return
        self._edited()

    def _edited(self, *_args) -> None:
        if self._loading:
            return
        if self.preset_name == "seed" and self._shapes is not None and self.sender() is not self.products \
                and self.sender() is not self.product_table:
            # the seed's mapping was changed: it is the planner's own from now on
            self._sources = {name: parse_source(name, text)
                             for name, text in self._edited_sources().items()}
            self.preset.blockSignals(True)
            self.preset.setCurrentIndex(self.preset.findData("custom"))
            self.preset.blockSignals(False)
            self._last_preset = "custom"
            self._show_preset(refill=False)
            return
        self._check()
        self.changed.emit()

    # -- the check ------------------------------------------------------------------------------------
    def _check(self) -> None:
        self.problems = []
        for row in range(self.columns.rowCount()):
            item = self.columns.item(row, COL_CHECK)
            if item is not None:
                item.setText("")
                item.setIcon(icons.dot("#22A35A", 10))
        preset = self.preset_name
        if preset == "default":
            self.summary.show_ok(self.tr("The app creates the table if it is missing."))
            return
        if self._shapes is None:
            if self.read_error:
                self.summary.show_error(self.tr("The mapping cannot be checked: %1")
                                        .replace("%1", self.read_error))
            else:
                self.summary.clear_message()
            return
        try:
            mapping = build_mapping(preset, self._table_name,
                                    self._edited_sources() if preset == "custom" else None,
                                    str(self.key.currentData() or "") if preset == "custom" else "")
        except MappingError as exc:
            self.problems = [MappingProblem("", "bad_source", str(exc))]
            self.summary.show_error(str(exc))
            return
        self.problems = check_mapping(mapping, self._shapes)
        rows = {self.columns.item(r, COL_NAME).text(): r for r in range(self.columns.rowCount())}
        for problem in self.problems:
            row = rows.get(problem.column)
            if row is None:
                continue
            item = self.columns.item(row, COL_CHECK)
            item.setIcon(icons.dot("#D63B3B" if problem.error else "#E3A008", 10))
            item.setText(problem_text(problem))
            item.setToolTip(problem_text(problem))
        errors = [p for p in self.problems if p.error]
        warnings = [p for p in self.problems if not p.error]
        if errors:
            listed = "; ".join(f"{p.column}: {problem_text(p)}" if p.column else problem_text(p)
                               for p in errors[:3])
            self.summary.show_error(self.tr(
                "This mapping cannot be written (%n problem(s)):", "", len(errors)) + " " + listed)
        elif warnings:
            self.summary.show_ok(self.tr("The mapping fits the table; %n warning(s).", "",
                                         len(warnings)))
        else:
            self.summary.show_ok(self.tr("The mapping fits the table."))

    def blocking_problem(self, changed: bool) -> str:
        """Why Save must wait ("" when it may go on); ``changed``: the mapping or table changed."""
        if self.preset_name == "default" or not changed:
            return ""
        if self._shapes is None:
            return self.read_error or self.tr("Read the table first, so the mapping can be checked.")
        errors = [p for p in self.problems if p.error]
        if errors:
            return self.tr("Fix the mapping first: %1").replace(
                "%1", "; ".join(f"{p.column}: {problem_text(p)}" if p.column else problem_text(p)
                                for p in errors))
        return ""

    def show_config_error(self, exc: ConfigError) -> None:
        self.summary.show_error(f"{exc.key}: {texts.config_problem_text(exc.key, exc.problem)}")


def _value_of(source: ColumnSource) -> str:
    if source.kind == "lookup" and source.value == "user_name":
        return f"user_name:{source.argument}"
    return source.value


__all__ = ["MappingPage", "problem_text", "source_text"]
