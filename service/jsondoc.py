"""Every JSON body of the service, read one way (v2 infer and `/v1` alike): simdjson, a byte-order mark skipped,
a key given twice in one object refused (parsers disagree on which one wins), containers left as lazy proxies
until a caller converts what it needs."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import simdjson

from service.errors import BadRequest


def plain(value: Any) -> Any:
    """A small parsed value (not tensor data) as plain Python: dict, list, str, number, bool or None."""
    if isinstance(value, simdjson.Object):
        return {key: plain(member) for key, member in fields(value).items()}
    if isinstance(value, simdjson.Array):
        return [plain(item) for item in value]
    return value


MAX_KEYS = 64  # more than any object of this API has; simdjson looks a key up by a scan, so n keys cost n^2


def fields(obj: simdjson.Object) -> dict[str, Any]:
    """An object's members, containers left as lazy proxies (`items()` would copy them whole). A dict, because
    simdjson's own `get` of a missing key costs a C++ exception."""
    if len(obj) > MAX_KEYS:  # 600,000 keys took 9 minutes to read one by one
        raise BadRequest(
            f"a JSON object of the request has {len(obj)} keys; this API's objects have at most {MAX_KEYS}"
        )
    try:
        found = {key: obj[key] for key in obj}
    except KeyError:  # simdjson cannot look up a key holding U+0000
        raise BadRequest("a JSON object key contains U+0000 (NUL); keys are field names such as 'inputs'") from None
    if len(found) != len(obj):
        twice = sorted(key for key, count in Counter(obj).items() if count > 1)[:5]
        raise BadRequest(f"the JSON object has the key(s) {twice} more than once; give each key once")
    return found


def type_name(value: Any) -> str:
    """The Python name of a parsed value's JSON type, without converting it."""
    if isinstance(value, simdjson.Array):
        return "list"
    return "dict" if isinstance(value, simdjson.Object) else type(value).__name__


def members(value: Any, what: str) -> dict[str, Any]:
    """A small object's members (parameters); {} when absent."""
    if value is None:
        return {}
    if not isinstance(value, simdjson.Object):
        raise BadRequest(f"{what} must be a JSON object, got {type_name(value)}")
    return fields(value)


_parsers = threading.local()


def parse_json(header: bytes) -> Any:
    """Parse with this thread's reusable simdjson parser. A parser refuses to parse again while objects of its
    last document are alive (e.g. held by a traceback); a new parser then takes over."""
    parser: simdjson.Parser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser()
    try:
        return parser.parse(header)
    except RuntimeError as exc:
        if not str(exc).startswith("Tried to re-use a parser"):
            raise  # a parse error that simdjson reports as RuntimeError, e.g. DEPTH_ERROR
    _parsers.parser = simdjson.Parser()
    return _parsers.parser.parse(header)


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """A JSON object's members (containers as lazy simdjson proxies); `what` names it in the error."""
    try:
        doc = parse_json(body)
    except (ValueError, RuntimeError) as exc:  # simdjson's parse errors, e.g. "TAPE_ERROR: ..."
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(doc, simdjson.Object):
        raise BadRequest(f"{what} must be a JSON object, got {type_name(doc)}")
    return fields(doc)
