"""The handler's response as the Lambda runtime sends it: its bytes, and their count, fast.

The Python runtime (awslambdaric's ``LambdaMarshaller``) encodes a handler's return value with
simplejson: default separators (``", "`` and ``": "``), ``allow_nan=True`` (``NaN``,
``Infinity``), ``Decimal`` written as ``str(d)`` (a NaN Decimal as ``NaN``), and ``ensure_ascii``
on every runtime but python3.12 and later (decided by ``AWS_EXECUTION_ENV``), then UTF-8. So on
python3.11 every non-ASCII character costs 6 bytes (12 beyond the BMP), DEL too, and each
separator one byte more than compact JSON: compact orjson undercounts by about 8%.

`encode_response` is the reference: simplejson with the runtime's very options (awslambdaric
depends on simplejson, so the runtime has it; locally it comes with the ``test`` extra).
`response_size` gives the same count without simplejson, through the standard library's C
encoder with the same separators and escaping, no circular-reference bookkeeping and no UTF-8
pass on ASCII output: about 1.6x faster than the runtime's own encoding (`bench/bench_response.py`).
Values outside JSON's types and Decimal take the exact, slower route through `encode_response`.

Nothing here is imported at module import: this runs in the Lambda (cold start).
"""

from __future__ import annotations

import os
from typing import Any

NON_ASCII_RUNTIMES = frozenset(
    {"AWS_Lambda_python3.12", "AWS_Lambda_python3.13", "AWS_Lambda_python3.14", "AWS_Lambda_python3.15"}
)
"""``AWS_EXECUTION_ENV`` values on which the runtime writes non-ASCII characters as UTF-8
(awslambdaric 4.x, ``lambda_runtime_marshaller.Encoder``); everywhere else it escapes them."""


def runtime_ensure_ascii() -> bool:
    """Whether the runtime this process runs in escapes non-ASCII characters, as awslambdaric decides."""
    return os.environ.get("AWS_EXECUTION_ENV") not in NON_ASCII_RUNTIMES


def encode_response(events: Any) -> bytes:
    """Exactly the bytes the Lambda Python runtime sends for the handler's return value ``events``.

    Raises what the runtime fails on: ``TypeError`` for a value simplejson can't encode, and
    ``UnicodeEncodeError`` for a lone surrogate on the runtimes that don't escape non-ASCII.
    """
    # simplejson is the runtime's encoder; the import is here so the Lambda never pays for it.
    import simplejson

    return _encoder(simplejson, runtime_ensure_ascii()).encode(events).encode("utf-8")  # type: ignore[no-any-return]


def response_size(events: Any) -> int:
    """``len(encode_response(events))``, computed about 1.6x faster and without simplejson.

    Exact for what a handler returns (dict, list, str, int, float, bool, None, Decimal, any
    nesting the runtime can encode); other types are sized by `encode_response`, except a
    namedtuple, which simplejson writes as an object and this counts as an array.
    """
    # The standard library's C encoder (what json.dumps runs), built with the runtime's separators.
    import _json

    ensure_ascii = runtime_ensure_ascii()
    encode = _json.make_encoder(
        None,  # no circular check: the size of a cycle is an error either way (RecursionError here)
        _same_length,
        _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring,
        None,
        ": ",
        ", ",
        False,
        False,
        True,
    )
    try:
        text = "".join(encode(events, 0))
    except _NotStandard:
        return len(encode_response(events))
    # ASCII output is one byte per character; otherwise count UTF-8 bytes (a lone surrogate
    # raises UnicodeEncodeError here as it does in the runtime when it posts the response).
    return len(text) if ensure_ascii else len(text.encode("utf-8"))


def within(events: Any, limit: int) -> bool:
    """Whether ``response_size(events) <= limit``; usually answered from a fast upper bound.

    The bound is orjson's compact encoding (about 5x faster than `response_size`) plus what the
    runtime's encoding can add to ASCII text: a space after each separator (every ``,`` and ``:``
    counted, inside strings too), DEL escaped (``\\u007f``), ``NaN``/``Infinity`` where orjson writes
    ``null``, and a two-digit negative exponent. Anything else (non-ASCII text, integers beyond 64
    bits, keys that aren't strings) takes the exact count.
    """
    bound = _upper_bound(events)
    if bound is not None and bound <= limit:
        return True
    return response_size(events) <= limit


def _upper_bound(events: Any) -> int | None:
    import orjson  # already loaded by the handler's first batch; ~0.5 ms at cold start

    try:
        data = orjson.dumps(events, default=_decimal_text)
    except (TypeError, orjson.JSONEncodeError):
        return None
    if not data.isascii():
        return None
    spaces = data.count(b",") + data.count(b":")
    wider = 5 * (data.count(b"\x7f") + data.count(b"null")) + data.count(b"e-")
    return len(data) + spaces + wider


def _decimal_text(value: Any) -> str:
    # orjson quotes it ("1.50"): two characters more than the runtime's raw 1.50, so still a bound.
    from decimal import Decimal

    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


class _NotStandard(Exception):
    """A value the standard encoder would size differently from simplejson: take the exact route."""


def _same_length(value: Any) -> Any:
    """For a ``Decimal``, something the standard encoder writes in as many characters as the
    runtime writes the Decimal (``str(d)``, a NaN as ``NaN``); anything else leaves the fast route."""
    from decimal import Decimal

    if not isinstance(value, Decimal):
        raise _NotStandard
    length = 3 if value.is_nan() else len(str(value))
    return 0 if length == 1 else "x" * (length - 2)  # '0' is one character, '"xx"' is length


def _encoder(simplejson: Any, ensure_ascii: bool) -> Any:
    """awslambdaric's ``Encoder``, option for option (``use_decimal=False`` plus a ``default``
    that writes a Decimal as raw ``str(d)`` and a NaN Decimal as the float NaN)."""
    import decimal
    import math

    def default(value: Any) -> Any:
        if isinstance(value, decimal.Decimal):
            if value.is_nan():
                return math.nan
            return simplejson.raw_json.RawJSON(str(value))
        raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")

    return simplejson.JSONEncoder(
        use_decimal=False, ensure_ascii=ensure_ascii, allow_nan=True, default=default
    )
