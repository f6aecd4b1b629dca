"""Serve a WSGI app (the user's Flask app, with the blueprints) on loopback, in a thread."""

from __future__ import annotations

import logging
import threading
from typing import Any

from .processes import free_port


class WebServer:
    """A werkzeug server in a daemon thread; ``url`` is its base URL.

    >>> server = WebServer(flask_app)            # doctest: +SKIP
    >>> server.url, server.stop()                # doctest: +SKIP
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None,
                 quiet: bool = True) -> None:
        from werkzeug.serving import make_server

        if quiet:
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self._server = make_server(host, self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="durable-web", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<WebServer {self.url}>"

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)
