"""The main window: deals and events tables, the deal detail, the actions and the status bar."""

from __future__ import annotations

import contextlib
import time

from PySide6.QtCore import (
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QTableView,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from ..model import DealState, EventStatus, Progress, Source, StatusSnapshot
from . import formatting, icons, texts
from .controller import AppController, Notice, ui_settings
from .detail import DealDetail
from .models import DealsModel, DealsProxy, EventsModel, EventsProxy
from .signinbar import SignInBar
from .widgets import MessageBar, StatusField

FILTER_DELAY_MS = 200
DETAIL_REFRESH_MS = 300


def _table(parent: QWidget) -> QTableView:
    view = QTableView(parent)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.setWordWrap(False)
    view.setTextElideMode(Qt.TextElideMode.ElideRight)
    view.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 10)
    view.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
    header = view.horizontalHeader()
    header.setHighlightSections(False)
    header.setSectionsMovable(True)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    return view


class MainWindow(QMainWindow):
    """The window the production planner watches."""

    quit_requested = Signal()
    settings_requested = Signal()
    stage_filter_requested = Signal()

    def __init__(self, controller: AppController, tray_available: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.tray_available = tray_available
        self.quitting = False
        self.told_about_tray = False
        self.setWindowIcon(icons.app_icon())
        self.setObjectName("mainWindow")
        self.resize(1360, 820)

        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_central()
        self._build_status_bar()

        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(0)  # raised to FILTER_DELAY_MS if refiltering gets slow
        self._filter_timer.timeout.connect(self._apply_filters)
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(DETAIL_REFRESH_MS)
        self._detail_timer.timeout.connect(self.refresh_detail)
        self._count_timer = QTimer(self)
        self._count_timer.setSingleShot(True)
        self._count_timer.setInterval(150)
        self._count_timer.timeout.connect(self._update_counts)

        c = controller
        c.status_updated.connect(self.on_status_updated)
        c.progress_updated.connect(self.on_progress_updated)
        c.deal_updated.connect(self.on_deal_updated)
        c.started.connect(self.on_started)
        c.start_failed.connect(self.on_start_failed)
        c.loaded.connect(self._update_counts)
        c.loaded.connect(self.refresh_detail)
        c.pipelines_loaded.connect(self.refresh_detail)
        c.settings_changed.connect(lambda _s: self._update_setup_bar())
        for model in (self.deals_proxy, self.events_proxy):
            model.rowsInserted.connect(self._schedule_counts)
            model.rowsRemoved.connect(self._schedule_counts)
            model.modelReset.connect(self._schedule_counts)
            model.layoutChanged.connect(self._schedule_counts)

        self.retranslate()
        self.restore_state()
        self.on_status_updated(controller.status)
        self._update_setup_bar()
        self._update_counts()

    # -- construction ------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        def action(icon_name: str = "", shortcut: QKeySequence | str | None = None) -> QAction:
            act = QAction(self)
            if icon_name:
                act.setIcon(icons.icon(icon_name))
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            self.addAction(act)
            return act

        self.resync_action = action("resync", "Ctrl+R")
        self.resync_action.triggered.connect(self.resync_selected)
        self.resync_all_action = action("resync_all")
        self.resync_all_action.triggered.connect(lambda: self.resync_all())
        self.retry_action = action("retry")
        self.retry_action.triggered.connect(self.retry_failed)
        self.dry_run_action = action("preview", "Ctrl+D")
        self.dry_run_action.triggered.connect(self.dry_run_selected)
        self.pause_action = action("pause")
        self.pause_action.triggered.connect(self.controller.toggle_pause)
        self.stage_filter_action = action("filter")
        self.stage_filter_action.triggered.connect(self.stage_filter_requested)
        self.settings_action = action("settings", QKeySequence.StandardKey.Preferences)
        if self.settings_action.shortcut().isEmpty():
            self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.settings_action.triggered.connect(self.settings_requested)
        self.doctor_action = action()
        self.doctor_action.triggered.connect(self.check_connection)
        self.quit_action = action("", QKeySequence.StandardKey.Quit)
        if self.quit_action.shortcut().isEmpty():
            self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.triggered.connect(self.quit_requested)
        self.reload_action = action("", QKeySequence.StandardKey.Refresh)
        self.reload_action.triggered.connect(self.controller.reload)
        self.find_action = action("", QKeySequence.StandardKey.Find)
        self.find_action.triggered.connect(self.focus_filter)
        self.deals_tab_action = action("", "Ctrl+1")
        self.deals_tab_action.triggered.connect(lambda: self.tabs.setCurrentIndex(0))
        self.events_tab_action = action("", "Ctrl+2")
        self.events_tab_action.triggered.connect(lambda: self.tabs.setCurrentIndex(1))
        self.logs_action = action()
        self.logs_action.triggered.connect(self.open_log_folder)
        self.about_action = action()
        self.about_action.triggered.connect(self.show_about)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        self.file_menu = bar.addMenu("")
        self.file_menu.addAction(self.settings_action)
        self.file_menu.addAction(self.doctor_action)
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.quit_action)
        self.sync_menu = bar.addMenu("")
        self.sync_menu.addAction(self.resync_action)
        self.sync_menu.addAction(self.resync_all_action)
        self.sync_menu.addAction(self.retry_action)
        self.sync_menu.addAction(self.dry_run_action)
        self.sync_menu.addSeparator()
        self.sync_menu.addAction(self.pause_action)
        self.sync_menu.addSeparator()
        self.sync_menu.addAction(self.stage_filter_action)
        self.view_menu = bar.addMenu("")
        self.view_menu.addAction(self.deals_tab_action)
        self.view_menu.addAction(self.events_tab_action)
        self.view_menu.addSeparator()
        self.view_menu.addAction(self.find_action)
        self.view_menu.addAction(self.reload_action)
        self.help_menu = bar.addMenu("")
        self.help_menu.addAction(self.logs_action)
        self.help_menu.addAction(self.about_action)

    def _build_toolbar(self) -> None:
        self.toolbar = QToolBar(self)
        self.toolbar.setObjectName("mainToolbar")
        self.toolbar.setMovable(False)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for act in (self.resync_action, self.resync_all_action, self.retry_action):
            self.toolbar.addAction(act)
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.pause_action)
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.stage_filter_action)
        self.toolbar.addAction(self.settings_action)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.toolbar)

    def _build_central(self) -> None:
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 6, 8, 4)
        layout.setSpacing(6)
        self.setup_bar = MessageBar(central, closable=False)
        self.setup_bar.action_triggered.connect(self.settings_requested)
        self.notice_bar = MessageBar(central)
        self.notice_bar.action_triggered.connect(self._on_notice_action)
        self._notice: Notice | None = None
        self.signin_bar = SignInBar(self.controller, central)
        layout.addWidget(self.setup_bar)
        layout.addWidget(self.signin_bar)
        layout.addWidget(self.notice_bar)

        self.tabs = QTabWidget(central)
        self.tabs.setDocumentMode(True)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        # deals tab
        deals_page = QWidget(self.tabs)
        self.deals_filter = QLineEdit(deals_page)
        self.deals_filter.setClearButtonEnabled(True)
        self.deals_filter.textChanged.connect(lambda _t: self._filter_timer.start())
        self.deals_state = QComboBox(deals_page)
        self.deals_state.currentIndexChanged.connect(lambda _i: self._apply_filters())
        self.deals_count = QLabel(deals_page)
        self.deals_count.setStyleSheet("color: #5B6675;")
        row = QHBoxLayout()
        row.addWidget(self.deals_filter, 3)
        row.addWidget(self.deals_state, 1)
        row.addStretch(1)
        row.addWidget(self.deals_count)

        self.deals_proxy = DealsProxy(self)
        self.deals_proxy.setSourceModel(self.controller.deals_model)
        self.deals_view = _table(deals_page)
        self.deals_view.setObjectName("dealsView")
        self.deals_view.setModel(self.deals_proxy)
        self.deals_view.setSortingEnabled(True)
        self.deals_view.sortByColumn(DealsModel.SYNCED, Qt.SortOrder.DescendingOrder)
        self.deals_view.customContextMenuRequested.connect(self._deals_menu)
        self.deals_view.doubleClicked.connect(lambda _i: self.detail.timeline.setFocus())
        self.deals_view.selectionModel().selectionChanged.connect(
            lambda *_a: self._detail_timer.start(0)
        )
        header = self.deals_view.horizontalHeader()
        widths = {
            DealsModel.ID: 56, DealsModel.TITLE: 300, DealsModel.PIPELINE: 105,
            DealsModel.STAGE: 165, DealsModel.AMOUNT: 115, DealsModel.CLOSE_DATE: 90,
            DealsModel.MODIFIED: 120, DealsModel.SYNCED: 120, DealsModel.STATE: 140,
        }
        for column, width in widths.items():
            header.resizeSection(column, width)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(DealsModel.TITLE, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(40)

        self.detail = DealDetail(self.controller.catalog, deals_page)
        self.detail.resync_requested.connect(lambda deal_id: self.resync_ids([deal_id]))
        self.detail.dry_run_requested.connect(lambda deal_id: self.open_dry_run([deal_id]))
        self.deals_splitter = QSplitter(Qt.Orientation.Vertical, deals_page)
        self.deals_splitter.setObjectName("dealsSplitter")
        self.deals_splitter.addWidget(self.deals_view)
        self.deals_splitter.addWidget(self.detail)
        self.deals_splitter.setStretchFactor(0, 3)
        self.deals_splitter.setStretchFactor(1, 2)
        self.deals_splitter.setChildrenCollapsible(False)
        page_layout = QVBoxLayout(deals_page)
        page_layout.setContentsMargins(0, 6, 0, 0)
        page_layout.addLayout(row)
        page_layout.addWidget(self.deals_splitter, 1)
        self.tabs.addTab(deals_page, icons.icon("deals"), "")

        # events tab
        events_page = QWidget(self.tabs)
        self.events_filter = QLineEdit(events_page)
        self.events_filter.setClearButtonEnabled(True)
        self.events_filter.textChanged.connect(lambda _t: self._filter_timer.start())
        self.events_status = QComboBox(events_page)
        self.events_status.currentIndexChanged.connect(lambda _i: self._apply_filters())
        self.events_count = QLabel(events_page)
        self.events_count.setStyleSheet("color: #5B6675;")
        row = QHBoxLayout()
        row.addWidget(self.events_filter, 3)
        row.addWidget(self.events_status, 1)
        row.addStretch(1)
        row.addWidget(self.events_count)
        self.events_proxy = EventsProxy(self)
        self.events_proxy.setSourceModel(self.controller.events_model)
        self.events_view = _table(events_page)
        self.events_view.setObjectName("eventsView")
        self.events_view.setModel(self.events_proxy)
        self.events_view.customContextMenuRequested.connect(self._events_menu)
        self.events_view.doubleClicked.connect(self._event_double_clicked)
        header = self.events_view.horizontalHeader()
        widths = {
            EventsModel.TIME: 140, EventsModel.EVENT: 180, EventsModel.DEAL: 64,
            EventsModel.SOURCE: 110, EventsModel.STATUS: 160, EventsModel.ATTEMPTS: 70,
            EventsModel.ERROR: 330, EventsModel.SENDER: 120,
        }
        for column, width in widths.items():
            header.resizeSection(column, width)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(EventsModel.ERROR, QHeaderView.ResizeMode.Stretch)

        page_layout = QVBoxLayout(events_page)
        page_layout.setContentsMargins(0, 6, 0, 0)
        page_layout.addLayout(row)
        page_layout.addWidget(self.events_view, 1)
        self.tabs.addTab(events_page, icons.icon("events"), "")

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setSizeGripEnabled(True)
        self.listen_field = StatusField(bar)
        self.last_event_field = StatusField(bar)
        self.queue_field = StatusField(bar)
        self.budget_field = StatusField(bar)
        self.problem_field = StatusField(bar)
        self.problem_field.clicked.connect(self.show_problems)
        self.progress_widget = QWidget(bar)
        progress_layout = QHBoxLayout(self.progress_widget)
        progress_layout.setContentsMargins(6, 0, 0, 0)
        progress_layout.setSpacing(6)
        self.progress_label = QLabel(self.progress_widget)
        self.progress_bar = QProgressBar(self.progress_widget)
        self.progress_bar.setFixedWidth(160)
        self.progress_bar.setMaximumHeight(16)
        self.progress_bar.setTextVisible(True)
        self.progress_cancel = QToolButton(self.progress_widget)
        self.progress_cancel.setIcon(icons.icon("cancel"))
        self.progress_cancel.setAutoRaise(True)
        self.progress_cancel.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.progress_cancel.clicked.connect(self.controller.cancel_resync)
        progress_layout.addWidget(self.progress_label)
        progress_layout.addWidget(self.progress_bar)
        progress_layout.addWidget(self.progress_cancel)
        self.progress_widget.setVisible(False)
        self.demo_field = StatusField(bar)
        self.demo_field.setVisible(self.controller.demo is not None)
        bar.addWidget(self.demo_field)
        bar.addWidget(self.listen_field, 1)
        for widget in (self.progress_widget, self.problem_field, self.last_event_field,
                       self.queue_field, self.budget_field):
            bar.addPermanentWidget(widget)

    # -- texts -------------------------------------------------------------------------------------
    def retranslate(self) -> None:
        demo = self.controller.demo is not None
        title = self.tr("Deal Monitor")
        self.setWindowTitle(title + (" — " + self.tr("demo") if demo else ""))
        self.file_menu.setTitle(self.tr("&File"))
        self.sync_menu.setTitle(self.tr("&Sync"))
        self.view_menu.setTitle(self.tr("&View"))
        self.help_menu.setTitle(self.tr("&Help"))
        self.resync_action.setText(self.tr("Resync deal"))
        self.resync_action.setToolTip(self.tr("Read the selected deals from the portal again (Ctrl+R)"))
        self.resync_all_action.setText(self.tr("Resync all"))
        self.resync_all_action.setToolTip(self.tr("Read every deal of the portal again"))
        self.retry_action.setText(self.tr("Retry failed"))
        self.retry_action.setToolTip(self.tr("Try the failed events again"))
        self.dry_run_action.setText(self.tr("Dry run…"))
        self.dry_run_action.setToolTip(self.tr(
            "Show what syncing the selected deals would write, without writing (Ctrl+D)"))
        self.stage_filter_action.setText(self.tr("Stage filter…"))
        self.stage_filter_action.setToolTip(self.tr("Choose the stages whose deals are not sent to production"))
        self.settings_action.setText(self.tr("Settings…"))
        self.doctor_action.setText(self.tr("Check connection…"))
        self.quit_action.setText(self.tr("Quit"))
        self.reload_action.setText(self.tr("Reload tables"))
        self.find_action.setText(self.tr("Find…"))
        self.deals_tab_action.setText(self.tr("Deals"))
        self.events_tab_action.setText(self.tr("Events"))
        self.logs_action.setText(self.tr("Open the log folder"))
        self.about_action.setText(self.tr("About Deal Monitor"))
        self.progress_cancel.setText(self.tr("Cancel"))
        self.demo_field.set(self.tr("Demo portal"), self.tr(
            "A simulated Bitrix24 portal on this computer; nothing here touches real data."),
            "demo")
        self.deals_filter.setPlaceholderText(self.tr("Filter deals: ID, title, pipeline or stage"))
        self.events_filter.setPlaceholderText(self.tr("Filter events: deal ID, event, error or sender"))
        self._fill_combo(self.deals_state, [(self.tr("All states"), None)] + [
            (texts.state_label(s), s) for s in (DealState.SYNCED, DealState.SKIPPED,
                                                DealState.FAILED, DealState.DELETED)
        ])
        self._fill_combo(self.events_status, [
            (self.tr("All statuses"), None),
            (self.tr("Problems only"), EventsProxy.PROBLEMS),
        ] + [(texts.status_label(s), s) for s in EventStatus])
        self.detail.retranslate()
        self.controller.deals_model.retranslate()
        self.controller.events_model.retranslate()
        self._fit_columns()
        self._update_pause_action()
        self._update_counts()
        self.on_status_updated(self.controller.status)

    def _fit_columns(self) -> None:
        """Widen columns whose header or labels do not fit in this language (never narrows)."""
        deals = self.controller.deals_model
        events = self.controller.events_model
        state_labels = [texts.state_label(s) for s in DealState]
        status_labels = [texts.status_label(s) for s in EventStatus] + [texts.retry_label()]
        event_labels = [texts.event_label(e) for e in ("ONCRMDEALADD", "ONCRMDEALUPDATE",
                                                       "ONCRMDEALDELETE", "HTTP 401")]
        samples = {
            (self.deals_view, DealsModel.STATE): state_labels,
            (self.events_view, EventsModel.STATUS): status_labels,
            (self.events_view, EventsModel.EVENT): event_labels,
            (self.events_view, EventsModel.SOURCE): [texts.source_label(s) for s in Source],
        }
        for view, model, stretch in ((self.deals_view, deals, DealsModel.TITLE),
                                     (self.events_view, events, EventsModel.ERROR)):
            header = view.horizontalHeader()
            header_metrics = header.fontMetrics()
            cell_metrics = view.fontMetrics()
            for column in range(model.columnCount()):
                if column == stretch:
                    continue
                needed = header_metrics.horizontalAdvance(model.column_title(column)) + 28
                for text in samples.get((view, column), []):
                    needed = max(needed, cell_metrics.horizontalAdvance(text) + 36)
                if header.sectionSize(column) < needed:
                    header.resizeSection(column, needed)

    @staticmethod
    def _fill_combo(combo: QComboBox, items: list[tuple[str, object]]) -> None:
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        for text, data in items:
            combo.addItem(text, data)
        index = combo.findData(current) if current is not None else 0
        combo.setCurrentIndex(max(0, index))
        combo.blockSignals(False)

    # -- state -------------------------------------------------------------------------------------
    def restore_state(self) -> None:
        settings = ui_settings()
        geometry = settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        for key, widget in (("window/dealsHeader", self.deals_view.horizontalHeader()),
                            ("window/eventsHeader", self.events_view.horizontalHeader()),
                            ("window/dealsSplitter", self.deals_splitter)):
            value = settings.value(key)
            if value is not None:
                widget.restoreState(value)
        sort_column = self.deals_view.horizontalHeader().sortIndicatorSection()
        sort_order = self.deals_view.horizontalHeader().sortIndicatorOrder()
        if 0 <= sort_column < DealsModel.COLUMN_COUNT:
            self.controller.deals_model.sort(sort_column, sort_order)
        self._fit_columns()
        tab = settings.value("window/tab")
        if tab is not None:
            with contextlib.suppress(TypeError, ValueError):
                self.tabs.setCurrentIndex(int(tab))

    def save_state(self) -> None:
        settings = ui_settings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        settings.setValue("window/dealsHeader", self.deals_view.horizontalHeader().saveState())
        settings.setValue("window/eventsHeader", self.events_view.horizontalHeader().saveState())
        settings.setValue("window/dealsSplitter", self.deals_splitter.saveState())
        settings.setValue("window/tab", self.tabs.currentIndex())
        settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.save_state()
        if self.tray_available and not self.quitting:
            event.ignore()
            self.hide()
            if not self.told_about_tray:
                self.told_about_tray = True
                self.controller.notified.emit(Notice(
                    "info", self.tr("Deal Monitor is still running"),
                    self.tr("It keeps syncing in the background. Use the tray icon to open "
                            "the window or to quit."),
                ))
            return
        event.accept()
        self.quit_requested.emit()

    def bring_to_front(self) -> None:
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    # -- filters and counts --------------------------------------------------------------------------
    def _apply_filters(self) -> None:
        self._filter_timer.stop()
        started = time.thread_time()
        selected = self.selected_deal_ids()
        current = self.deals_view.currentIndex()
        current_id = (
            self.controller.deals_model.deal_at(self.deals_proxy.mapToSource(current).row()).id
            if current.isValid() else None
        )
        self.deals_proxy.set_text(self.deals_filter.text())
        self.deals_proxy.set_state(self.deals_state.currentData())
        self._reselect(selected, current_id)
        self.events_proxy.set_text(self.events_filter.text())
        self.events_proxy.set_status(self.events_status.currentData())
        self._update_counts()
        # A keystroke waits for the filter timer. While refiltering is quick, the timer only
        # gathers the keystrokes already queued (0 ms): a fixed pause would be added to every
        # key's latency. Should refiltering get slow, typing is debounced again.
        quick = time.thread_time() - started < 0.05
        self._filter_timer.setInterval(0 if quick else FILTER_DELAY_MS)

    def focus_filter(self) -> None:
        edit = self.deals_filter if self.tabs.currentIndex() == 0 else self.events_filter
        edit.setFocus()
        edit.selectAll()

    def _schedule_counts(self, *_args) -> None:
        if not self._count_timer.isActive():
            self._count_timer.start()

    def _reselect(self, deal_ids: list[int], current_id: int | None) -> None:
        """Keep the selected deals selected across a filter change (the model resets).

        One selection of row ranges, so one ``selectionChanged`` however many rows."""
        model = self.controller.deals_model
        proxy = self.deals_proxy
        last = model.columnCount() - 1
        rows = sorted({row for row in map(model.row_of, deal_ids) if row is not None})
        ranges = QItemSelection()
        start = 0
        for i, row in enumerate(rows):
            if i + 1 == len(rows) or rows[i + 1] != row + 1:  # the end of a run of rows
                ranges.select(proxy.mapFromSource(model.index(rows[start], 0)),
                              proxy.mapFromSource(model.index(row, last)))
                start = i + 1
        if not ranges.isEmpty():
            self.deals_view.selectionModel().select(
                ranges, QItemSelectionModel.SelectionFlag.Select
                | QItemSelectionModel.SelectionFlag.Rows)
        row = model.row_of(current_id) if current_id is not None else None
        if row is not None:
            self.deals_view.selectionModel().setCurrentIndex(
                proxy.mapFromSource(model.index(row, 0)),
                QItemSelectionModel.SelectionFlag.NoUpdate,
            )

    def _update_counts(self) -> None:
        total = self.controller.deals_model.total
        shown = self.deals_proxy.rowCount()
        number = formatting.number_text
        if self.deals_proxy.filtering:
            self.deals_count.setText(
                self.tr("%1 of %n deal(s)", "", total).replace("%1", number(shown))
            )
        else:
            self.deals_count.setText(self.tr("%n deal(s)", "", total))
        events_total = self.controller.events_model.rowCount()
        self.events_count.setText(
            self.tr("%1 of %n event(s)", "", events_total).replace(
                "%1", number(self.events_proxy.rowCount()))
        )
        if self.controller.loading and not total:
            self.deals_count.setText(self.tr("Loading…"))
        self.tabs.setTabText(0, self.tr("Deals (%1)").replace("%1", number(total)))
        problems = self.controller.status.failed_count
        events_title = self.tr("Events")
        if problems:
            events_title += " " + self.tr("(%n failed)", "", problems)
        self.tabs.setTabText(1, events_title)

    # -- selection and detail ------------------------------------------------------------------------
    def selected_deal_ids(self) -> list[int]:
        model = self.controller.deals_model
        rows = self.deals_view.selectionModel().selectedRows()
        return [model.deal_at(self.deals_proxy.mapToSource(i).row()).id for i in rows]

    def select_deal(self, deal_id: int) -> bool:
        model = self.controller.deals_model
        if model.deal(deal_id) is None:
            return False
        if model.row_of(deal_id) is None:  # filtered out: show everything again
            self.deals_filter.clear()
            self.deals_state.setCurrentIndex(0)
            self._apply_filters()
        source = model.index(model.row_of(deal_id), 0)
        index = self.deals_proxy.mapFromSource(source)
        self.tabs.setCurrentIndex(0)
        self.deals_view.selectionModel().setCurrentIndex(
            index,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.deals_view.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        self.refresh_detail()
        return True

    def refresh_detail(self) -> None:
        self._detail_timer.stop()
        ids = self.selected_deal_ids()
        if len(ids) == 1:
            deal = self.controller.deal(ids[0])
            if deal is not None:
                self.detail.show_deal(deal, self.controller.history(deal.id))
                return
        if len(ids) > 1:
            self.detail.show_many(len(ids))
        else:
            self.detail.show_nothing()

    def on_deal_updated(self, deal_id: int) -> None:
        if self.detail.deal_id == deal_id and not self._detail_timer.isActive():
            self._detail_timer.start()

    # -- actions -------------------------------------------------------------------------------------
    def resync_selected(self) -> int:
        if self.tabs.currentIndex() == 1:
            ids = self._selected_event_deal_ids()
        else:
            ids = self.selected_deal_ids()
        if not ids:
            self.statusBar().showMessage(self.tr("Select one or more deals first."), 4000)
            return 0
        return self.resync_ids(ids)

    def resync_ids(self, ids: list[int]) -> int:
        count = self.controller.resync(ids)
        if count:
            self.statusBar().showMessage(
                self.tr("%n deal(s) will be read from the portal again.", "", count), 5000
            )
        return count

    def dry_run_selected(self) -> None:
        if self.tabs.currentIndex() == 1:
            ids = self._selected_event_deal_ids()
        else:
            ids = self.selected_deal_ids()
        self.open_dry_run(ids[:50])

    def open_dry_run(self, ids: list[int]):
        """The dry run window for these deals (empty: the planner types IDs or takes the queue)."""
        from .dryrundialog import DryRunDialog

        if not self.controller.running:
            self.statusBar().showMessage(self.tr("Connect to the portal first."), 4000)
            return None
        dialog = DryRunDialog(self.controller, ids, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.dry_run_dialog = dialog
        return dialog

    def ask(self, title: str, question: str) -> bool:
        """A yes/no question (tests replace this)."""
        answer = QMessageBox.question(self, title, question)
        return answer == QMessageBox.StandardButton.Yes

    def resync_all(self, confirm: bool = True) -> bool:
        if confirm and not self.ask(
            self.tr("Resync all deals"),
            self.tr("Read every deal of the portal again and update the production database?\n\n"
                    "This can take a while on a large portal; you can keep working and cancel "
                    "it at any time."),
        ):
            return False
        started = self.controller.resync_all()
        if not started:
            self.statusBar().showMessage(self.tr("A full resync is already running."), 4000)
        return started

    def retry_failed(self) -> int:
        count = self.controller.retry_failed()
        if count:
            message = self.tr("%n failed event(s) queued again.", "", count)
        else:
            message = self.tr("There are no failed events.")
        self.statusBar().showMessage(message, 5000)
        return count

    def show_problems(self) -> None:
        self.tabs.setCurrentIndex(1)
        index = self.events_status.findData(EventsProxy.PROBLEMS)
        self.events_status.setCurrentIndex(index)
        self._apply_filters()

    def open_log_folder(self) -> None:
        from ..service import locations

        folder = locations(self.controller.settings).data_dir / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            self.tr("About Deal Monitor"),
            self.tr("Deal Monitor %1\n\nKeeps the production database in step with the deals "
                    "of Bitrix24.").replace("%1", __version__),
        )

    def _update_pause_action(self) -> None:
        paused = self.controller.status.paused
        self.pause_action.setIcon(icons.icon("resume" if paused else "pause"))
        self.pause_action.setText(self.tr("Resume processing") if paused
                                  else self.tr("Pause processing"))
        self.pause_action.setToolTip(
            self.tr("Sync the events that arrived while paused") if paused
            else self.tr("Stop writing to the production database; events are still received "
                         "and kept")
        )

    # -- context menus -------------------------------------------------------------------------------
    def _deals_menu(self, pos) -> None:
        ids = self.selected_deal_ids()
        menu = QMenu(self)
        menu.addAction(self.resync_action)
        menu.addAction(self.dry_run_action)
        if len(ids) == 1:
            show_events = menu.addAction(self.tr("Show the events of this deal"))
            show_events.triggered.connect(lambda: self.show_events_of(ids[0]))
        copy = menu.addAction(self.tr("Copy deal IDs"))
        copy.triggered.connect(lambda: QGuiApplication.clipboard().setText(
            "\n".join(str(i) for i in ids)))
        copy.setEnabled(bool(ids))
        menu.popup(self.deals_view.viewport().mapToGlobal(pos))

    def _selected_event_deal_ids(self) -> list[int]:
        model = self.controller.events_model
        ids = []
        for index in self.events_view.selectionModel().selectedRows():
            record = model.record_at(self.events_proxy.mapToSource(index).row())
            if record.deal_id is not None and record.deal_id not in ids:
                ids.append(record.deal_id)
        return ids

    def _events_menu(self, pos) -> None:
        ids = self._selected_event_deal_ids()
        menu = QMenu(self)
        resync = menu.addAction(icons.icon("resync"), self.tr("Resync deal"))
        resync.triggered.connect(lambda: self.resync_ids(ids))
        resync.setEnabled(bool(ids))
        if len(ids) == 1:
            show = menu.addAction(self.tr("Show the deal"))
            show.triggered.connect(lambda: self.select_deal(ids[0]))
            show.setEnabled(self.controller.deal(ids[0]) is not None)
        index = self.events_view.indexAt(pos)
        if index.isValid():
            record = self.controller.events_model.record_at(self.events_proxy.mapToSource(index).row())
            if record.error:
                copy = menu.addAction(self.tr("Copy the error"))
                copy.triggered.connect(lambda: QGuiApplication.clipboard().setText(record.error))
        menu.popup(self.events_view.viewport().mapToGlobal(pos))

    def _event_double_clicked(self, index: QModelIndex) -> None:
        record = self.controller.events_model.record_at(self.events_proxy.mapToSource(index).row())
        if record.deal_id is not None:
            self.select_deal(record.deal_id)

    def show_events_of(self, deal_id: int) -> None:
        self.tabs.setCurrentIndex(1)
        self.events_status.setCurrentIndex(0)
        self.events_filter.setText(str(deal_id))
        self._apply_filters()

    # -- reports -------------------------------------------------------------------------------------
    def on_started(self) -> None:
        self._update_setup_bar()
        if self.controller.demo is not None:
            self.show_notice(Notice("info", self.tr("Demo"), self.tr(
                "A simulated Bitrix24 portal creates and moves deals every few seconds. "
                "Nothing here touches your real data.")))

    def on_start_failed(self, error: str) -> None:
        self._update_setup_bar()

    def _update_setup_bar(self) -> None:
        c = self.controller
        if c.start_error:
            self.setup_bar.show_message(
                "error", texts.error_text(c.start_error), self.tr("Open settings"),
                title=self.tr("Deal Monitor could not start"))
        elif not c.configured and c.demo is None:
            self.setup_bar.show_message(
                "warning",
                self.tr("Not connected to a Bitrix24 portal yet. Events are received and kept, "
                        "but deals cannot be read until the webhook is set."),
                self.tr("Open settings"))
        else:
            self.setup_bar.dismiss()

    def show_notice(self, notice: Notice) -> None:
        """In-window notification (used when there is no system tray)."""
        self._notice = notice
        action = self.tr("Show") if notice.deal_ids or notice.kind == "failure" else ""
        timeout = 0 if notice.urgent else 12_000
        self.notice_bar.show_message(notice.kind, notice.text, action, timeout, title=notice.title)

    def _on_notice_action(self) -> None:
        notice = self._notice
        if notice is None:
            return
        if notice.kind == "failure":
            self.show_problems()
        elif notice.deal_ids:
            self.select_deal(notice.deal_ids[0])
        self.notice_bar.dismiss()

    def check_connection(self) -> None:
        """The connection doctor's lines in a small dialog (the checks run off the GUI thread)."""
        from .doctordialog import DoctorDialog

        dialog = DoctorDialog(self.controller.monitor, self)
        dialog.show()
        self.doctor_dialog = dialog

    def on_status_updated(self, status: StatusSnapshot) -> None:
        c = self.controller
        self.signin_bar.update_status(status)
        if status.listening:
            self.listen_field.set(
                self.tr("Receiving events at %1").replace("%1", status.listen_url),
                self.tr("Bitrix24 sends events to %1").replace("%1", status.listen_url),
                "listening",
            )
        elif not c.running:
            self.listen_field.set(self.tr("Starting…") if not c.start_error
                                  else self.tr("Not running"), "", "not_listening",
                                  alert=bool(c.start_error))
        elif not c.monitor.listen:
            self.listen_field.set(self.tr("Listener off: changes are found by reconciliation"),
                                  "", "not_listening")
        else:
            reason = texts.error_text(status.listen_error) or self.tr("unknown reason")
            self.listen_field.set(self.tr("Not receiving events: %1").replace("%1", reason),
                                  reason, "not_listening", alert=True)
        if status.last_event_at:
            self.last_event_field.set(
                self.tr("Last event %1").replace("%1", formatting.time_text(status.last_event_at)),
                formatting.datetime_text(status.last_event_at),
            )
        else:
            self.last_event_field.set(self.tr("No events yet"))
        queue_text = self.tr("Queue: %1").replace("%1", formatting.number_text(status.inbox_depth))
        if status.paused:
            queue_text += " · " + self.tr("paused")
        self.queue_field.set(queue_text, self.tr("Events waiting to be synced"),
                             "tray_paused" if status.paused else "", alert=False)
        self.budget_field.set(
            self.tr("API budget %1/%2").replace("%1", str(int(status.rate_budget))).replace(
                "%2", str(status.rate_burst)),
            self.tr("Requests the portal accepts right now without waiting (Bitrix24 limit)"),
        )
        problems = []
        if status.failed_count:
            problems.append(self.tr("%n failed", "", status.failed_count))
        if status.auth_state == "reauthorize" and status.connection_mode not in ("app",
                                                                                "app_offline"):
            problems.append(self.tr("the portal refuses the webhook"))
        if status.last_error:
            problems.append(texts.error_text(status.last_error))
        if status.events_silent:
            problems.append(self.tr("changes arrive without events: %1").replace(
                "%1", status.silence_hint))
        problems.extend(texts.warning_text(code) for code in status.warnings)
        if problems:
            text = problems[0] if len(problems) == 1 else f"{problems[0]} (+{len(problems) - 1})"
            if len(text) > 70:
                text = text[:68] + "…"
            self.problem_field.set(text, "\n".join(problems), "tray_attention", alert=True)
            self.problem_field.setVisible(True)
        else:
            self.problem_field.setVisible(False)
        self.retry_action.setEnabled(status.failed_count > 0)
        self._update_pause_action()
        self._schedule_counts()

    def on_progress_updated(self, progress: Progress) -> None:
        if progress.finished:
            self.progress_widget.setVisible(False)
            return
        self.progress_widget.setVisible(True)
        if progress.total:
            self.progress_bar.setRange(0, progress.total)
            self.progress_bar.setValue(min(progress.done, progress.total))
            self.progress_bar.setFormat(f"{progress.done}/{progress.total}")
        else:
            self.progress_bar.setRange(0, 0)
        eta = formatting.duration_text(progress.eta_seconds)
        label = self.tr("Resync")
        if eta:
            label += " · " + self.tr("about %1 left").replace("%1", eta)
        self.progress_label.setText(label)

    def notice_text(self) -> str:
        return self.notice_bar.message()


__all__ = ["MainWindow"]
