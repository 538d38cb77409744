"""Run one function on several workers' clients at the same moment, as several processes would."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

C = TypeVar("C")
R = TypeVar("R")


def at_once(work: Callable[[C], R], clients: Sequence[C], timeout: float = 30.0) -> list[R]:
    """`work(client)` for every client in its own thread, all released together; re-raises the first error."""
    start = threading.Barrier(len(clients))
    results: list[R] = []
    errors: list[BaseException] = []

    def run(client: C) -> None:
        try:
            start.wait(timeout=10)
            results.append(work(client))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    if errors:
        raise errors[0]
    return results
