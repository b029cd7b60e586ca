"""``cache``: :func:`functools.lru_cache` for the tables a cold job builds once, without
importing ``functools`` (which imports ``collections``) on that path."""
from __future__ import annotations

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["cache"]


def cache(maxsize: int | None = None) -> Callable[[F], F]:
    """Remember a function's results by its (hashable, positional) arguments; with ``maxsize``,
    the memory is emptied when it is full (these tables are asked for a handful of keys)."""
    def wrap(fn: F) -> F:
        memory: dict[tuple[Any, ...], Any] = {}

        def cached(*args: Any) -> Any:
            try:
                return memory[args]
            except KeyError:
                pass
            if maxsize is not None and len(memory) >= maxsize:
                memory.clear()
            value = memory[args] = fn(*args)
            return value

        cached.__doc__, cached.__name__, cached.__qualname__ = fn.__doc__, fn.__name__, fn.__qualname__
        cached.__wrapped__ = fn  # type: ignore[attr-defined]
        cached.cache_clear = memory.clear  # type: ignore[attr-defined]
        return cached  # type: ignore[return-value]
    return wrap
