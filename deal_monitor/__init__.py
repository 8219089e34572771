"""Deal Monitor: keeps a production/warehouse database in step with Bitrix24 CRM deals."""

__version__ = "0.1.0"  # the one place: pyproject, --version, User-Agent and About read it
