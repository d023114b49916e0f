"""The store interface: a sandbox record is a JSON document keyed by its id, with its state indexed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class SandboxStore(ABC):
    @abstractmethod
    def put(self, record: dict[str, Any]) -> None:
        """Insert or replace `record` (it has `sandbox_id` and `state`)."""

    @abstractmethod
    def insert_new(self, record: dict[str, Any]) -> bool:
        """Insert `record` unless its id exists (a deleted one is replaced); False when the id is taken."""

    @abstractmethod
    def get(self, sandbox_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def list(self, states: list[str] | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def touch(self, times: dict[str, float]) -> None:
        """Record data-plane activity (sandbox id → epoch seconds; a later time wins), apart from the records
        so a read node never overwrites what the write node saved."""

    @abstractmethod
    def activity(self, sandbox_ids: list[str]) -> dict[str, float]:
        """The latest activity `touch` recorded for each of `sandbox_ids` (absent when none)."""

    @abstractmethod
    def close(self) -> None: ...
