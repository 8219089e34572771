"""The desktop window of Deal Monitor: the only package that imports PySide6.

``app.run_gui`` is the entry point; ``controller.AppController`` owns the Monitor and the
table models, ``bridge.SignalBridge`` carries the core's reports to the GUI thread, and the
widgets (main window, dialogs, tray) only talk to the controller.
"""

from .compat import protect_singletons

protect_singletons()
