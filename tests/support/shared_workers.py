"""Stop the e2e suite's shared worker(s) before a folder starts workers of its own.

The shared worker loads only tests.e2e.proj: left running beside workers that load more
(``--include ...``), it would take their messages on the same queues. Each folder that
imports the e2e fixtures holds its own ``SharedWorker`` (pytest imports
``tests/e2e/conftest.py`` under another module name there), and pytest's fixture
registry is not public, so they are found among live objects by class name. Each starts
again when a later test asks for it.
"""

from __future__ import annotations

import gc


def stop_shared_workers() -> int:
    """Stop every running SharedWorker; returns how many were running."""
    running = [obj for obj in gc.get_objects()
               if type(obj).__name__ == "SharedWorker" and getattr(obj, "worker", None)]
    for shared in running:
        shared.stop()
    return len(running)
