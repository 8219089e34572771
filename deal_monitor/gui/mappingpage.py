"""The settings' mapping page: which deal data goes into which column of the production table.

The page reads the target table's columns (reflection, off the GUI thread) and offers only
those; for each column the planner picks a source — a deal field (listed with the portal's
labels from ``crm.deal.fields``), a template, a constant or a lookup — and a conversion. The
core's mapping check runs on every change: errors (a missing column, a required column left
out, a date into a number column) block saving, warnings are shown. A second tab does the same
for the product-row table (its ``deal_id`` and ``row_id`` are filled by the app; a missing
table is created with the default columns). "Dry run" tries the mapping as edited on real
deals without writing anything.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..config import ConfigError, MappingSettings
from ..mapping import MappingError, build_mapping, parse_source
from ..mapping.check import MappingProblem, check_mapping, check_product_mapping
from ..mapping.presets import DEFAULT_COLUMNS, DEFAULT_PRODUCT_COLUMNS, SEED_COLUMNS
from . import icons, texts
from .sourcetable import (  # noqa: F401 - the column numbers are used by the tests
    COL_CHECK,
    COL_CONVERT,
    COL_KIND,
    COL_NAME,
    COL_VALUE,
    SourceTable,
)
from .tasks import run_in_background
from .widgets import InlineMessage

# standard deal fields, offered while the portal's own list is not loaded
STANDARD_FIELDS = ("ID", "TITLE", "STAGE_ID", "CATEGORY_ID", "OPPORTUNITY", "CURRENCY_ID",
                   "CLOSEDATE", "BEGINDATE", "COMMENTS", "ASSIGNED_BY_ID", "COMPANY_ID",
                   "CONTACT_ID", "DATE_CREATE", "DATE_MODIFY", "CLOSED", "SOURCE_ID")


def product_fields() -> list[tuple[str, str, str]]:
    """The fields of a ``crm.deal.productrows.get`` row, with labels."""
    return [
        ("PRODUCT_ID", QCoreApplication.translate("MappingPage", "Product ID"), "integer"),
        ("PRODUCT_NAME", QCoreApplication.translate("MappingPage", "Product name"), "string"),
        ("PRICE", QCoreApplication.translate("MappingPage", "Price"), "double"),
        ("PRICE_EXCLUSIVE", QCoreApplication.translate("MappingPage", "Price without tax"),
         "double"),
        ("QUANTITY", QCoreApplication.translate("MappingPage", "Quantity"), "double"),
        ("MEASURE_NAME", QCoreApplication.translate("MappingPage", "Unit of measure"), "string"),
        ("MEASURE_CODE", QCoreApplication.translate("MappingPage", "Unit code"), "integer"),
        ("DISCOUNT_SUM", QCoreApplication.translate("MappingPage", "Discount amount"), "double"),
        ("DISCOUNT_RATE", QCoreApplication.translate("MappingPage", "Discount, %"), "double"),
        ("TAX_RATE", QCoreApplication.translate("MappingPage", "Tax rate, %"), "double"),
        ("TAX_INCLUDED", QCoreApplication.translate("MappingPage", "Tax included (Y/N)"), "char"),
        ("SORT", QCoreApplication.translate("MappingPage", "Sort order"), "integer"),
        ("STORE_ID", QCoreApplication.translate("MappingPage", "Warehouse ID"), "integer"),
    ]


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
        "keys_equal": lambda: QCoreApplication.translate(
            "MappingPage", "the deal's ID and the product row's ID need two different columns"),
        "null_in_required": lambda: QCoreApplication.translate("MappingPage", "the value is empty but the column does not allow NULL"),
    }.get(problem.code)
    return found() if found else problem.text


def value_kind_label(kind: str) -> str:
    return {
        "text": QCoreApplication.translate("MappingPage", "text"), "int": QCoreApplication.translate("MappingPage", "whole number"), "decimal": QCoreApplication.translate("MappingPage", "decimal number"),
        "float": QCoreApplication.translate("MappingPage", "decimal number"), "date": QCoreApplication.translate("MappingPage", "date"), "datetime": QCoreApplication.translate("MappingPage", "date and time"),
        "bool": QCoreApplication.translate("MappingPage", "yes/no value"), "other": QCoreApplication.translate("MappingPage", "value"),
    }.get(kind, kind)


class MappingPage(QWidget):
    """Edit ``[mapping]`` against the target tables' real columns."""

    changed = Signal()
    dry_run_requested = Signal()

    def __init__(self, mapping: MappingSettings, table: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._table_name = table
        self._reader = None
        self._tasks = []
        self._reading = 0
        self.problems: list[MappingProblem] = []
        self.product_problems: list[MappingProblem] = []
        self.read_error = ""
        self.product_table_missing = False  # it is created with the default columns

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

        standard = [(code, "", "") for code in STANDARD_FIELDS]
        self.columns = SourceTable(standard, parent=self)
        self.columns.edited.connect(self._edited)
        self.columns.setMinimumHeight(220)
        self.key = QComboBox(self)
        self.key.currentIndexChanged.connect(self._edited)

        self.products = QCheckBox(self.tr("Also write the deal's product rows into table"), self)
        self.products.setChecked(mapping.products)
        self.products.toggled.connect(self._products_toggled)
        self.product_table = QLineEdit(mapping.product_table, self)
        self.product_table.editingFinished.connect(self._product_table_changed)
        self.product_note = QLabel(self.tr(
            "What was sold, for ordering materials: one row per product row of the deal, "
            "removed when it is removed in Bitrix24. The app fills the two key columns chosen "
            "below; a table that does not exist yet is created with the default columns."), self)
        self.product_note.setWordWrap(True)
        self.product_note.setStyleSheet("color: #5B6675;")
        self._product_keys = (mapping.product_deal_column, mapping.product_row_column)
        self.product_deal_key = QComboBox(self)
        self.product_row_key = QComboBox(self)
        for combo in (self.product_deal_key, self.product_row_key):
            combo.currentIndexChanged.connect(self._product_keys_changed)
        self.product_columns = SourceTable(
            product_fields(), fixed=self._fixed_product_keys(), lookups=False,
            field_kind=self.tr("Product row field"), parent=self)
        self.product_columns.edited.connect(self._edited)
        self.product_columns.set_sources(mapping.product_columns or DEFAULT_PRODUCT_COLUMNS)

        self.summary = InlineMessage(self)
        self.dry_run_button = QPushButton(icons.icon("preview"), self.tr("Dry run…"), self)
        self.dry_run_button.setToolTip(self.tr(
            "Show what this mapping would write for real deals, without writing anything"))
        self.dry_run_button.clicked.connect(self.dry_run_requested)

        deal_tab = QWidget(self)
        deal_layout = QVBoxLayout(deal_tab)
        deal_layout.addWidget(self.preset_note)
        deal_layout.addWidget(self.columns, 1)
        key_row = QHBoxLayout()
        key_row.addWidget(QLabel(self.tr("Rows are found by"), deal_tab))
        key_row.addWidget(self.key, 1)
        deal_layout.addLayout(key_row)
        product_tab = QWidget(self)
        product_layout = QVBoxLayout(product_tab)
        products_row = QHBoxLayout()
        products_row.addWidget(self.products)
        products_row.addWidget(self.product_table, 1)
        product_layout.addLayout(products_row)
        product_layout.addWidget(self.product_note)
        keys_row = QHBoxLayout()
        keys_row.addWidget(QLabel(self.tr("The deal's ID goes into"), product_tab))
        keys_row.addWidget(self.product_deal_key, 1)
        keys_row.addWidget(QLabel(self.tr("the product row's ID (the key) into"), product_tab))
        keys_row.addWidget(self.product_row_key, 1)
        product_layout.addLayout(keys_row)
        product_layout.addWidget(self.product_columns, 1)
        self.tables = QTabWidget(self)
        self.tables.addTab(deal_tab, self.tr("Deals"))
        self.tables.addTab(product_tab, self.tr("Product rows"))

        top = QHBoxLayout()
        top.addWidget(QLabel(self.tr("Preset"), self))
        top.addWidget(self.preset, 1)
        top.addWidget(self.read_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.summary, 1)
        bottom.addWidget(self.dry_run_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.read_msg)
        layout.addWidget(self.tables, 1)
        layout.addLayout(bottom)

        self._key_column = mapping.key_column
        self._load_preset_sources(mapping.preset, mapping.columns)
        self.preset.setCurrentIndex(max(0, self.preset.findData(mapping.preset)))
        self._last_preset = self.preset_name
        self.preset.currentIndexChanged.connect(self._preset_changed)
        self._show_preset()
        self._products_toggled(mapping.products)

    # -- what the page holds ---------------------------------------------------------------------
    @property
    def preset_name(self) -> str:
        return str(self.preset.currentData())

    @property
    def table_read(self) -> bool:
        return self.columns.shapes is not None

    def _load_preset_sources(self, preset: str, custom: dict[str, str]) -> None:
        self.columns.set_sources({"default": DEFAULT_COLUMNS, "seed": SEED_COLUMNS}.get(
            preset, custom))

    def mapping_settings(self, base: MappingSettings) -> MappingSettings:
        """The ``[mapping]`` section as edited (validated by Settings.replace)."""
        import dataclasses

        preset = self.preset_name
        columns = self.columns.edited_sources() if preset == "custom" else {}
        products = self.product_columns.edited_sources()
        if self.product_table_missing or products == DEFAULT_PRODUCT_COLUMNS:
            products = {}  # the default columns (a missing table is created with them)
        return dataclasses.replace(
            base, preset=preset,
            key_column=str(self.key.currentData() or "") if preset == "custom" else "",
            columns=columns, products=self.products.isChecked(),
            product_table=self.product_table.text().strip() or "deal_product",
            product_columns=products, product_deal_column=self._product_keys[0],
            product_row_column=self._product_keys[1])

    # -- presets ------------------------------------------------------------------------------------
    def _preset_changed(self) -> None:
        preset, before = self.preset_name, self._last_preset
        self._last_preset = preset
        if preset in ("default", "seed"):
            self._load_preset_sources(preset, {})
        elif before == "default":
            self.columns.set_sources({})  # the default table's columns mean nothing elsewhere
        self._show_preset()
        if preset != "default" and not self.table_read and not self.read_error:
            self.read_table()

    def _show_preset(self) -> None:
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
        self.columns.setVisible(preset != "default")
        self.key.setEnabled(preset == "custom")
        self._check()
        self.changed.emit()

    def _products_toggled(self, on: bool) -> None:
        self.product_table.setEnabled(on)
        self.product_columns.setEnabled(on)
        if on and self.product_columns.shapes is None and not self.product_table_missing \
                and self._reader is not None and not self._reading:
            self.read_table()
        self._edited()

    def _product_table_changed(self) -> None:
        self.product_columns.set_shapes(None)
        self.product_table_missing = False
        if self.products.isChecked():
            self.read_table()

    # -- reading the tables -------------------------------------------------------------------------
    def set_table(self, table: str, force: bool = False) -> None:
        """The settings' table (or database) changed: the columns read before no longer apply."""
        if table == self._table_name and not force:
            return
        self._table_name = table
        self.columns.set_shapes(None)
        self.product_columns.set_shapes(None)
        self.product_table_missing = False
        self.read_error = ""
        self.read_msg.clear_message()
        self._show_preset()

    def set_reader(self, reader) -> None:
        """``reader(table)`` (on the GUI thread) returns a call that returns its columns or None."""
        self._reader = reader

    def read_table(self) -> None:
        """Read the deal table's and the product table's columns off the GUI thread."""
        if self._reader is None:
            return
        deal_reader = self._reader(self._table_name)
        product_name = self.product_table.text().strip() or "deal_product"
        product_reader = self._reader(product_name)

        def read():
            return deal_reader(), product_reader()

        self.read_msg.show_busy(self.tr("Reading the table's columns…"))
        self.read_button.setEnabled(False)
        self._reading += 1
        self._tasks.append(run_in_background(read, self._on_read, self._on_read_failed,
                                             name="reflect", owner=self))

    def _on_read(self, found) -> None:
        self._reading -= 1
        self.read_button.setEnabled(True)
        deal_shapes, product_shapes = found
        if deal_shapes is None:
            self.read_error = self.tr("The table “%1” does not exist in this database.").replace(
                "%1", self._table_name)
            self.read_msg.show_error(self.read_error)
        else:
            self.read_error = ""
            self.read_msg.clear_message()
        self.columns.set_shapes(deal_shapes)
        self._fill_keys()
        self.product_table_missing = product_shapes is None
        if product_shapes is not None and \
                self.product_columns.edited_sources() == DEFAULT_PRODUCT_COLUMNS:
            # the default columns are a suggestion for a table that has them, not a demand
            present = {shape.name for shape in product_shapes}
            self.product_columns.set_sources({
                name: text for name, text in DEFAULT_PRODUCT_COLUMNS.items() if name in present})
        self._fill_product_keys(product_shapes)
        self.product_columns.set_shapes(product_shapes)
        self._check()

    def _fixed_product_keys(self) -> dict[str, str]:
        deal, row = self._product_keys
        return {deal: self.tr("the deal's ID"), row: self.tr("the product row's ID")}

    def _fill_product_keys(self, shapes) -> None:
        """Offer the product table's columns for its two keys (kept if the table has them)."""
        names = [shape.name for shape in shapes or []]
        for combo, wanted, fallback in ((self.product_deal_key, self._product_keys[0], "deal_id"),
                                        (self.product_row_key, self._product_keys[1], "row_id")):
            combo.blockSignals(True)
            combo.clear()
            for name in names or [wanted]:
                combo.addItem(name, name)
            index = combo.findData(wanted)
            combo.setCurrentIndex(index if index >= 0 else max(0, combo.findData(fallback)))
            combo.setEnabled(bool(names))
            combo.blockSignals(False)
        if names:
            self._product_keys = (str(self.product_deal_key.currentData()),
                                  str(self.product_row_key.currentData()))
        self.product_columns.fixed = self._fixed_product_keys()

    def _product_keys_changed(self) -> None:
        deal, row = self.product_deal_key.currentData(), self.product_row_key.currentData()
        if deal is None or row is None:
            return
        self.product_columns.keep_edits()
        for key in (deal, row):  # a column that becomes a key loses its source
            self.product_columns.sources.pop(key, None)
        self._product_keys = (str(deal), str(row))
        self.product_columns.fixed = self._fixed_product_keys()
        if self.product_columns.shapes is not None:
            self.product_columns.fill()
        self._edited()

    def _on_read_failed(self, exc: Exception) -> None:
        self._reading -= 1
        self.read_button.setEnabled(True)
        self.read_error = texts.error_text(str(exc))
        self.read_msg.show_error(self.tr("Cannot read the table: %1").replace("%1", self.read_error))
        self._check()

    def set_fields(self, fields: list[tuple[str, str, str]]) -> None:
        """The portal's deal fields (code, label, type), offered in the field lists."""
        self.columns.set_fields(fields)
        self._check()

    def _fill_keys(self) -> None:
        current = str(self.key.currentData() or self._key_column or "")
        self.key.blockSignals(True)
        self.key.clear()
        self.key.addItem(self.tr("the app's link table “%1_link” (the table's primary key)")
                         .replace("%1", self._table_name), "")
        for shape in self.columns.shapes or []:
            self.key.addItem(self.tr("column “%1”, which holds the deal ID").replace("%1", shape.name),
                             shape.name)
        self.key.setCurrentIndex(max(0, self.key.findData(current)))
        self.key.blockSignals(False)

    def _edited(self, *_args) -> None:
        if self.preset_name == "seed" and self.table_read and self.sender() is self.columns:
            # the seed's mapping was changed: it is the planner's own from now on
            self.preset.blockSignals(True)
            self.preset.setCurrentIndex(self.preset.findData("custom"))
            self.preset.blockSignals(False)
            self._last_preset = "custom"
            self._show_preset()
            return
        self._check()
        self.changed.emit()

    # -- the check ------------------------------------------------------------------------------------
    def _check(self) -> None:
        self.problems = self._deal_problems()
        self.product_problems = self._product_problems()
        # problems of no column (no usable key) are listed in the summary below
        self.columns.show_problems(self.problems, problem_text)
        self.product_columns.show_problems(self.product_problems, problem_text)
        if self.preset_name == "default" and not self.products.isChecked():
            self.summary.show_ok(self.tr("The app creates the table if it is missing."))
            return
        if self.preset_name != "default" and not self.table_read:
            if self.read_error:
                self.summary.show_error(self.tr("The mapping cannot be checked: %1")
                                        .replace("%1", self.read_error))
            else:
                self.summary.clear_message()
            return
        everything = self.problems + self.product_problems
        errors = [p for p in everything if p.error]
        warnings = [p for p in everything if not p.error]
        if errors:
            self.summary.show_error(self.tr(
                "This mapping cannot be written (%n problem(s)):", "", len(errors)) + " "
                + "; ".join(_named(p) for p in errors[:3]))
        elif warnings:
            self.summary.show_ok(self.tr("The mapping fits the table; %n warning(s).", "",
                                         len(warnings)))
        else:
            self.summary.show_ok(self.tr("The mapping fits the table."))

    def _deal_problems(self) -> list[MappingProblem]:
        preset = self.preset_name
        if preset == "default" or not self.table_read:
            return []
        try:
            mapping = build_mapping(
                preset, self._table_name,
                self.columns.edited_sources() if preset == "custom" else None,
                str(self.key.currentData() or "") if preset == "custom" else "")
        except MappingError as exc:
            return [MappingProblem("", "bad_source", str(exc))]
        return check_mapping(mapping, self.columns.shapes)

    def _product_problems(self) -> list[MappingProblem]:
        if not self.products.isChecked() or self.product_columns.shapes is None:
            return []
        try:
            sources = {name: parse_source(name, text)
                       for name, text in self.product_columns.edited_sources().items()}
        except MappingError as exc:
            return [MappingProblem("", "bad_source", str(exc))]
        if self._product_keys[0] == self._product_keys[1]:
            return [MappingProblem(self._product_keys[1], "keys_equal",
                                   "the deal's ID and the row's ID need two columns")]
        return check_product_mapping(sources, self.product_columns.shapes, self._product_keys)

    def blocking_problem(self, changed: bool) -> str:
        """Why Save must wait ("" when it may go on); ``changed``: the mapping or table changed."""
        if not changed:
            return ""
        if self.preset_name != "default" and not self.table_read:
            return self.read_error or self.tr("Read the table first, so the mapping can be checked.")
        errors = [p for p in self.problems + self.product_problems if p.error]
        if errors:
            return self.tr("Fix the mapping first: %1").replace(
                "%1", "; ".join(_named(p) for p in errors))
        return ""

    def show_config_error(self, exc: ConfigError) -> None:
        self.summary.show_error(f"{exc.key}: {texts.config_problem_text(exc.key, exc.problem)}")


def _named(problem: MappingProblem) -> str:
    return f"{problem.column}: {problem_text(problem)}" if problem.column else problem_text(problem)


__all__ = ["MappingPage", "problem_text", "product_fields"]
