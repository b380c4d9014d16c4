"""The canonical JSON writer for registry leaves: RFC 8785 (JCS) bytes at C speed, for the values records hold.

``rfc8785`` (the reference, pure Python) is what verifiers compare with; writing every leaf with it costs tens of µs a
record (bench/bench_registry.py). msgspec's encoder with sorted keys writes the same bytes in ~1 µs, on the value
domain the record schema (optout_registry/schema.py) admits, and only there:

* **Strings**: msgspec escapes exactly what JCS escapes — ``"``, ``\\``, and U+0000..U+001F as ``\\b \\t \\n \\f \\r``
  or lower-case ``\\u00xx`` — and writes everything else (U+007F, U+2028, astral characters) as raw UTF-8. A lone
  surrogate has no UTF-8 form: both refuse it (``UnicodeEncodeError`` here).
* **Integers** print as plain decimals, as ECMAScript prints the same numbers while they are exact doubles: the
  schema bounds them to ±(2**53-1).
* **Keys** are sorted by code point; JCS sorts by UTF-16 code units. The two orders differ only between a key with
  a character at or above U+E000 and one with an astral character, so the schema admits ASCII keys only.
* **Floats** are not written (the schema has none): msgspec's shortest round-trip repr and ECMAScript's
  Number-to-string differ in exponent form (``1e+21`` against ``1e21``).

tests/test_canonical.py proves the byte equality with hypothesis over every value type, and shows each of the
differences above outside the domain, so a change of either library cannot go unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["jcs"]

jcs: Callable[[Any], bytes] = msgspec.json.Encoder(order="sorted").encode
"""RFC 8785 bytes of a JSON value within the record schema's domain (validate first: outside it, the result may differ
from JCS or be no JSON at all -- a datetime is written as a string, a set as an array). The encoder's own method, not
a wrapper: it runs once per record appended."""
