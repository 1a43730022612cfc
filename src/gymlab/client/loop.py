"""An asyncio event loop running in a background thread, driven from synchronous code."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """Owns one event loop in a daemon thread; :meth:`run` submits a coroutine and waits."""

    def __init__(self, name: str = "gymlab-client") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def running(self) -> bool:
        """True until :meth:`stop`."""
        return self._thread.is_alive() and not self.loop.is_closed()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result; cancels it after ``timeout`` s."""
        if not self.running:
            coro.close()
            raise RuntimeError("the client's event loop is stopped (env closed?)")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if future.done():
                raise  # the coroutine's own TimeoutError (the same class since Python 3.11)
            future.cancel()
            raise TimeoutError(f"operation did not finish within {timeout} s") from None
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt in the caller: don't leave it running
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what is still running, stop the loop and join the thread (bounded)."""
        if not self.running:
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)
            # On the loop's own thread: the caller's thread may run a loop of its own
            # (Jupyter's kernel), where run_until_complete would refuse.
            await self.loop.shutdown_asyncgens()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(timeout + 1)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()
