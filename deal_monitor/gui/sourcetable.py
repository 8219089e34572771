"""One table of the mapping page: a target table's columns, each with its source and conversion.

Rows are the table's reflected columns (then mapped columns the table lacks, marked so the
planner can drop them); per row a source kind, a value editor (the list of deal or product-row
fields with the portal's labels, a template, a constant or a lookup) and a conversion. Key
columns the app fills itself (``deal_id``, ``row_id`` of the product table) are shown, not
edited. The check column shows the core's mapping problems for each row.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from ..mapping import MappingError, parse_source
from ..mapping.check import ColumnShape, MappingProblem
from ..mapping.spec import ColumnSource
from . import icons
from .widgets import bold

KINDS = ("", "field", "template", "const", "lookup")
CONVERSIONS = ("", "text", "int", "decimal", "date", "datetime", "bool", "plain")
# the conversion a field gets when it is picked for a column of this kind
SUGGESTED = {"int": "int", "decimal": "decimal", "float": "decimal", "date": "date",
             "datetime": "datetime", "bool": "bool", "text": "text"}

COL_NAME, COL_TYPE, COL_KIND, COL_VALUE, COL_CONVERT, COL_CHECK = range(6)
_OK, _ERROR, _WARNING = "#22A35A", "#D63B3B", "#E3A008"


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


# what a lookup can name: value strings as the config writes them after "lookup:"
LOOKUP_CHOICES = ("stage_name", "pipeline_name", "user_name:ASSIGNED_BY_ID",
                  "user_name:CREATED_BY_ID", "user_name:MODIFY_BY_ID")


def lookup_label(name: str) -> str:
    return {
        "stage_name": QCoreApplication.translate("MappingPage", "Stage name"),
        "pipeline_name": QCoreApplication.translate("MappingPage", "Pipeline name"),
        "user_name:ASSIGNED_BY_ID": QCoreApplication.translate(
            "MappingPage", "Responsible person's name"),
        "user_name:CREATED_BY_ID": QCoreApplication.translate("MappingPage", "Creator's name"),
        "user_name:MODIFY_BY_ID": QCoreApplication.translate(
            "MappingPage", "Name of who changed it last"),
    }.get(name, name)


def source_text(kind: str, value: str, convert: str) -> str:
    """The config's one-string form of a source (``field:OPPORTUNITY|decimal``)."""
    if kind == "lookup" and value.startswith("user_name"):
        value = value if ":" in value else "user_name:ASSIGNED_BY_ID"
    return f"{kind}:{value}" + (f"|{convert}" if convert else "")


def value_of(source: ColumnSource) -> str:
    if source.kind == "lookup" and source.value == "user_name":
        return f"user_name:{source.argument}"
    return source.value


class SourceTable(QTableWidget):
    """Edit the sources of one target table's columns."""

    edited = Signal()

    def __init__(self, fields: list[tuple[str, str, str]], fixed: dict[str, str] | None = None,
                 lookups: bool = True, field_kind: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(0, 6, parent)
        self.field_kind = field_kind  # what "field" is called here ("Product row field")
        self.fields = fields  # (code, label, type) offered in the field lists
        self.fixed = fixed or {}  # key columns the app fills: name -> what it holds
        self.lookups = lookups
        self.shapes: list[ColumnShape] | None = None  # None: the table was not read
        self.sources: dict[str, ColumnSource] = {}
        self._rows: list[ColumnShape] = []
        self._loading = False
        self.setHorizontalHeaderLabels([
            self.tr("Column"), self.tr("Type"), self.tr("Source"), self.tr("Value"),
            self.tr("Conversion"), self.tr("Check")])
        self.verticalHeader().setVisible(False)
        self.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.setAlternatingRowColors(True)
        header = self.horizontalHeader()
        for column, mode in ((COL_NAME, QHeaderView.ResizeMode.ResizeToContents),
                             (COL_TYPE, QHeaderView.ResizeMode.ResizeToContents),
                             (COL_KIND, QHeaderView.ResizeMode.ResizeToContents),
                             (COL_VALUE, QHeaderView.ResizeMode.Stretch),
                             (COL_CONVERT, QHeaderView.ResizeMode.ResizeToContents),
                             (COL_CHECK, QHeaderView.ResizeMode.Interactive)):
            header.setSectionResizeMode(column, mode)
        header.resizeSection(COL_CHECK, 190)

    # -- content ------------------------------------------------------------------------------------
    def set_sources(self, columns: dict[str, str]) -> None:
        """Sources from the settings (unparseable ones are left out)."""
        self.sources = {}
        for name, text in columns.items():
            try:
                self.sources[name] = parse_source(name, text)
            except MappingError:
                continue
        if self.shapes is not None:
            self.fill()

    def set_shapes(self, shapes: list[ColumnShape] | None) -> None:
        """The table's columns (None: not read, or no such table)."""
        if self.shapes is not None:
            self.keep_edits()
        self.shapes = shapes
        if shapes is None:
            self.setRowCount(0)
        else:
            self.fill()

    def set_fields(self, fields: list[tuple[str, str, str]]) -> None:
        self.fields = fields
        if self.shapes is not None:
            self.keep_edits()
            self.fill()

    def keep_edits(self) -> None:
        """Take the widgets' state into ``sources`` (before the rows are rebuilt)."""
        if self.shapes is not None:
            self.sources = {name: parse_source(name, text)
                            for name, text in self.edited_sources().items()}

    def edited_sources(self) -> dict[str, str]:
        """Column -> source string, as shown (or as loaded, when the table was not read)."""
        if self.shapes is None:
            return {name: source_text(s.kind, value_of(s), s.convert)
                    for name, s in self.sources.items()}
        result = {}
        for row in range(self.rowCount()):
            kinds = self.cellWidget(row, COL_KIND)
            if not isinstance(kinds, QComboBox) or not kinds.currentData():
                continue
            name = self.item(row, COL_NAME).text()
            convert = self.cellWidget(row, COL_CONVERT).currentData()
            result[name] = source_text(kinds.currentData(), self._value(row), convert)
        return result

    def row_of(self) -> dict[str, int]:
        return {self.item(r, COL_NAME).text(): r for r in range(self.rowCount())}

    # -- rows ---------------------------------------------------------------------------------------
    def fill(self) -> None:
        assert self.shapes is not None
        self._loading = True
        present = {shape.name for shape in self.shapes}
        # mapped columns the table lacks stay listed, marked, until the planner drops them
        self._rows = [*self.shapes, *(ColumnShape(name, "", "other") for name in self.sources
                                      if name not in present)]
        self.setRowCount(len(self._rows))
        for row, shape in enumerate(self._rows):
            name = QTableWidgetItem(shape.name)
            name.setFlags(Qt.ItemFlag.ItemIsEnabled)
            if shape.primary_key:
                name.setIcon(icons.icon("key"))
            kind = QTableWidgetItem(shape.type_name or self.tr("not in the table"))
            kind.setFlags(Qt.ItemFlag.ItemIsEnabled)
            if shape.required and shape.name not in self.fixed:
                name.setFont(bold(name.font()))  # every new row needs a value here
                name.setToolTip(self.tr("required"))
                kind.setToolTip(self.tr("required"))
            self.setItem(row, COL_NAME, name)
            self.setItem(row, COL_TYPE, kind)
            self.setItem(row, COL_CHECK, QTableWidgetItem(""))
            if shape.name in self.fixed:
                self._fixed_row(row, self.fixed[shape.name])
                continue
            source = self.sources.get(shape.name)
            kinds = QComboBox(self)
            for k in KINDS:
                if k != "lookup" or self.lookups:
                    label = self.field_kind if k == "field" and self.field_kind else kind_label(k)
                    kinds.addItem(label, k)
            kinds.setCurrentIndex(max(0, kinds.findData(source.kind if source else "")))
            kinds.currentIndexChanged.connect(lambda _i, r=row: self._kind_changed(r))
            self.setCellWidget(row, COL_KIND, kinds)
            converts = QComboBox(self)
            for c in CONVERSIONS:
                converts.addItem(conversion_label(c), c)
            converts.setCurrentIndex(max(0, converts.findData(source.convert if source else "")))
            converts.currentIndexChanged.connect(self._changed)
            self.setCellWidget(row, COL_CONVERT, converts)
            self._make_value_editor(row, source)
        self._loading = False
        self.resizeRowsToContents()

    def _fixed_row(self, row: int, meaning: str) -> None:
        for column in (COL_KIND, COL_VALUE, COL_CONVERT):
            self.removeCellWidget(row, column)
        filled = QTableWidgetItem(self.tr("filled by the app"))
        filled.setFlags(Qt.ItemFlag.ItemIsEnabled)
        self.setItem(row, COL_KIND, filled)
        what = QTableWidgetItem(meaning)
        what.setFlags(Qt.ItemFlag.ItemIsEnabled)
        self.setItem(row, COL_VALUE, what)

    def _make_value_editor(self, row: int, source: ColumnSource | None) -> None:
        kind = source.kind if source else ""
        if kind == "field":
            editor = QComboBox(self)
            editor.setEditable(True)
            for code, label, _type in self.fields:
                editor.addItem(f"{label} ({code})" if label and label != code else code, code)
            index = editor.findData(source.value)
            if index >= 0:
                editor.setCurrentIndex(index)
            else:
                editor.setEditText(source.value)
            editor.lineEdit().setCursorPosition(0)  # the label's start, not its end
            editor.currentIndexChanged.connect(
                lambda _i, e=editor: e.lineEdit().setCursorPosition(0))
            editor.currentIndexChanged.connect(self._changed)
            editor.editTextChanged.connect(self._changed)
        elif kind == "lookup":
            editor = QComboBox(self)
            current = value_of(source)
            for name in dict.fromkeys([*LOOKUP_CHOICES, current]):
                editor.addItem(lookup_label(name), name)
            editor.setCurrentIndex(max(0, editor.findData(current)))
            editor.currentIndexChanged.connect(self._changed)
        elif kind in ("template", "const"):
            editor = QLineEdit(source.value, self)
            editor.setCursorPosition(0)
            editor.setPlaceholderText("Сделка №{ID} — {TITLE}" if kind == "template" else "1")
            editor.textChanged.connect(self._changed)
        else:
            editor = QLabel("", self)
        self.setCellWidget(row, COL_VALUE, editor)

    def _value(self, row: int) -> str:
        editor = self.cellWidget(row, COL_VALUE)
        if isinstance(editor, QComboBox):
            data = editor.currentData()
            if data is not None and editor.currentText() == editor.itemText(editor.currentIndex()):
                return str(data)
            return editor.currentText().strip()
        if isinstance(editor, QLineEdit):
            return editor.text()
        return ""

    def _kind_changed(self, row: int) -> None:
        kind = self.cellWidget(row, COL_KIND).currentData()
        shape = self._rows[row]
        first_field = self.fields[0][0] if self.fields else ""
        value = {"field": "TITLE" if any(f[0] == "TITLE" for f in self.fields) else first_field,
                 "lookup": "stage_name"}.get(kind, "")
        convert = ""
        if kind == "field":
            convert = SUGGESTED.get(shape.kind, "")
        elif kind == "const" and shape.kind in ("int", "decimal", "bool"):
            convert = SUGGESTED[shape.kind]
        converts = self.cellWidget(row, COL_CONVERT)
        converts.blockSignals(True)
        converts.setCurrentIndex(max(0, converts.findData(convert)))
        converts.blockSignals(False)
        self._make_value_editor(row, ColumnSource(kind, value, convert) if kind else None)
        self._changed()

    def _changed(self, *_args) -> None:
        if not self._loading:
            self.edited.emit()

    # -- the check ----------------------------------------------------------------------------------
    def show_problems(self, problems: list[MappingProblem], text_of) -> None:
        """Mark each row with its problems (problems of no row are the caller's to show)."""
        rows = self.row_of()
        for row in range(self.rowCount()):
            item = self.item(row, COL_CHECK)
            item.setText("")
            item.setToolTip("")
            item.setIcon(icons.dot(_OK, 10))
        for problem in problems:
            row = rows.get(problem.column)
            if row is None:
                continue
            item = self.item(row, COL_CHECK)
            item.setIcon(icons.dot(_ERROR if problem.error else _WARNING, 10))
            item.setText(text_of(problem))
            item.setToolTip(text_of(problem))


__all__ = ["COL_CHECK", "COL_CONVERT", "COL_KIND", "COL_NAME", "COL_TYPE", "COL_VALUE",
           "SourceTable", "source_text"]
