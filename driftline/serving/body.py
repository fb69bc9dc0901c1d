"""Turning an HTTP request body into JSON values, with the 4xx a client needs when it cannot.

Order of checks (cheapest first, each with its own status): content type (415), size (413),
base64 (400), UTF-8 (400), JSON syntax (400). ``NaN``/``Infinity`` literals, which Python's json
module accepts but JSON does not, are kept as :class:`NonFinite` markers so the validator can name
the row and field that holds them (422) instead of failing the whole body.

Bodies are parsed by orjson (several times faster than ``json`` on number-heavy rows;
``benchmarks/serving.py``). Whatever orjson refuses (``NaN`` literals, integers beyond
64 bits, lone surrogates, syntax errors) is parsed again by the standard library, which either
accepts it the way this module always has or produces the line/column message clients get.
One difference remains: orjson reads an integer beyond the 64-bit range as the nearest float. As a
feature value it encodes to the same float32 either way; only an error message shows it rounded.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from typing import Any

import orjson

from driftline.serving.errors import ServingError, bad_request

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
"""2 MiB: 1,000 rows of a 20-feature set are ~0.6 MB; Lambda's own synchronous limit is 6 MB."""


class NonFinite:
    """A ``NaN``/``Infinity``/``-Infinity`` literal found in the body (reported per field)."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        return self.literal


_DECODER = json.JSONDecoder(parse_constant=NonFinite)


def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not content_type:
        return "", {}
    main, *params = content_type.split(";")
    parsed: dict[str, str] = {}
    for p in params:
        k, _, v = p.strip().partition("=")
        parsed[k.strip().lower()] = v.strip().strip('"').lower()
    return main.strip().lower(), parsed


_ACCEPTED_TYPES: set[str] = set()
"""Content-Type values already accepted: clients send the same one on every request, so the check is
a set lookup after the first time (bounded: values come from a header)."""


def check_json_content_type(content_type: str | None) -> None:
    """415 unless the body is declared as JSON (``application/json`` or ``application/*+json``, UTF-8)."""
    if content_type in _ACCEPTED_TYPES:
        return
    _check_media_type(content_type)
    if content_type and len(_ACCEPTED_TYPES) < 64:
        _ACCEPTED_TYPES.add(content_type)


def _check_media_type(content_type: str | None) -> None:
    media, params = _media_type(content_type)
    if not media:
        raise ServingError(
            415,
            "unsupported_media_type",
            "the request has no Content-Type; send the body as JSON with the header 'Content-Type: application/json'",
        )
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise ServingError(
            415,
            "unsupported_media_type",
            f"Content-Type {media!r} is not supported; send the body as JSON with the header "
            f"'Content-Type: application/json'",
        )
    charset = params.get("charset")
    if charset not in (None, "utf-8", "utf8"):
        raise ServingError(
            415, "unsupported_media_type", f"charset {charset!r} is not supported; encode the body as UTF-8"
        )


def parse_json_body(
    body: str | None, *, content_type: str | None, is_base64: bool = False, max_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> Any:
    """The JSON value of a request body, or a :class:`ServingError` saying what is wrong with it."""
    return parse_json_text(json_body_text(body, content_type=content_type, is_base64=is_base64, max_bytes=max_bytes))


def json_body_text(
    body: str | None, *, content_type: str | None, is_base64: bool = False, max_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> str:
    """The body's text once its content type, size and encoding are acceptable (not parsed yet)."""
    check_json_content_type(content_type)
    if body is None or body == "":
        raise bad_request("the request body is empty; send a JSON object", code="empty_body")
    if len(body) > max_bytes or (not body.isascii() and len(body.encode("utf-8")) > max_bytes):
        raise _too_large(max_bytes)
    text = body
    if is_base64:
        if len(body) * 3 // 4 > max_bytes:
            raise _too_large(max_bytes)
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(
                "the body is marked base64-encoded but is not valid base64", code="malformed_body"
            ) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise bad_request(f"the body is not valid UTF-8 (byte {e.start})", code="malformed_body") from None
    return text


def parse_json_text(text: str) -> Any:
    """Parse JSON text (orjson; what it refuses goes through ``json`` for the exact message)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        refused = str(e)
    if "surrogate" in refused:  # json would accept it, and the string would break every encoder after it
        raise bad_request(
            f"malformed JSON: a string holds a lone UTF-16 surrogate ({refused}); JSON text must be valid Unicode",
            code="malformed_json",
        )
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as e:
        raise bad_request(
            f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}", code="malformed_json"
        ) from None
    except RecursionError:
        raise bad_request("the JSON body is nested too deeply", code="malformed_json") from None
    except ValueError:  # Python refuses integers of more than sys.get_int_max_str_digits() digits
        raise bad_request(
            f"a number in the body has more than {sys.get_int_max_str_digits():,} digits; send numbers a model can use",
            code="malformed_json",
        ) from None


def _too_large(max_bytes: int) -> ServingError:
    return ServingError(
        413, "body_too_large", f"the request body is larger than {max_bytes:,} bytes; split it into several requests"
    )
