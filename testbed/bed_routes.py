"""The test bed's own routes (`/_testbed/...`) that the behaviour modules add, so emulator.py needs
one dispatch line for all of them. A handler takes the request's JSON body (a dict, `{}` when
empty) and answers a JSON-serialisable body; ValueError and KeyError become 400s in emulator.py.
"""

import json

ROUTES: dict[tuple[str, str], object] = {}


def route(method: str, path: str):  # noqa: ANN201
    def register(handler):  # noqa: ANN001, ANN202
        ROUTES[(method, path)] = handler
        return handler

    return register


def dispatch(method: str, path: str, environ) -> tuple[str, object] | None:  # noqa: ANN001
    handler = ROUTES.get((method, path))
    if handler is None:
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    request = json.loads(environ["wsgi.input"].read(length) or b"{}")
    if not isinstance(request, dict):
        raise ValueError("the body must be a JSON object")
    return "200 OK", handler(request)
