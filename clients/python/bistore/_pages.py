"""One page of a list (keyset pagination: items, and the cursor of the next page)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next: str | None

    @classmethod
    def from_json(cls, body: Any) -> Page[T]:
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ValueError(f"not a page: {body!r:.200}")
        nxt = body.get("next")
        return cls(list(body["items"]), nxt if isinstance(nxt, str) and nxt else None)
