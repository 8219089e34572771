"""Names the portal knows, for mapped columns: stages, pipelines, users (cached)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..bitrix.client import BitrixClient
from ..bitrix.stages import Pipeline
from ..errors import BitrixError

log = logging.getLogger(__name__)


class PortalLookups:
    def __init__(self, client: BitrixClient, pipelines: Callable[[], list[Pipeline]]) -> None:
        self.client = client
        self.pipelines = pipelines
        self._users: dict[str, str] = {}
        self._lock = threading.Lock()

    def _pipelines(self) -> list[Pipeline]:
        try:
            return self.pipelines()
        except BitrixError as exc:
            log.warning("stage names unavailable: %s", exc)
            return []

    def stage_name(self, stage_id: str, category_id: int) -> str:
        for pipeline in self._pipelines():
            for stage in pipeline.stages:
                if stage.id == stage_id:
                    return stage.name
        return stage_id

    def pipeline_name(self, category_id: int) -> str:
        for pipeline in self._pipelines():
            if pipeline.id == category_id:
                return pipeline.name
        return str(category_id)

    def user_name(self, user_id: str) -> str:
        if not user_id:
            return ""
        with self._lock:
            if user_id in self._users:
                return self._users[user_id]
        name = user_id
        try:
            reply = self.client.call("user.get", {"ID": user_id})
            users = reply.result if isinstance(reply.result, list) else []
            if users and isinstance(users[0], dict):
                parts = [users[0].get("NAME"), users[0].get("LAST_NAME")]
                name = " ".join(str(p) for p in parts if p) or user_id
        except BitrixError as exc:
            if exc.transient:
                raise
            log.warning("user %s: %s", user_id, exc)
        with self._lock:
            self._users[user_id] = name
        return name
