"""Java ``.properties`` files, read exactly as ``java.util.Properties.load`` reads them.

Kafka Connect users bring their existing ``connect-standalone.properties`` and
connector files; those rely on Java's full syntax (``:`` or whitespace as the
separator, backslash line continuations, ``\\uXXXX`` escapes), so a naive
``key=value`` split would silently misread some of them. Rules, as in Java:

* A natural line ends at ``\\n``, ``\\r`` or ``\\r\\n``; its leading spaces, tabs
  and form feeds are ignored. Blank lines and lines whose first character is
  ``#`` or ``!`` are skipped (a comment never continues).
* A line ending in an odd number of backslashes continues on the next line,
  whose leading whitespace is dropped; an empty next line ends the entry.
* The key ends at the first unescaped ``=``, ``:`` or whitespace; whitespace
  and then one ``=`` or ``:`` after it are skipped, the rest is the value.
* ``\\t \\n \\r \\f`` and ``\\uXXXX`` are escapes; a backslash before any other
  character stands for that character (``\\=``, ``\\:``, ``\\#``, ``\\ ``, ``\\\\``).
* A later duplicate key replaces an earlier one.

Files are decoded as UTF-8, falling back to ISO-8859-1 (Java's encoding for
``load(InputStream)``) when they are not valid UTF-8.
"""

from __future__ import annotations

import os
import re
from typing import Iterator, Union

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_WHITESPACE = " \t\f"
_SEPARATORS = "=:"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _odd_trailing_backslashes(text: str) -> bool:
    return (len(text) - len(text.rstrip("\\"))) % 2 == 1


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(number of the first natural line, logical line) for every entry, continuations joined."""
    entry, start, continuing = "", 0, False
    for number, raw in enumerate(_LINE_BREAK.split(text), start=1):
        line = raw.lstrip(_WHITESPACE)
        if not continuing:
            start = number
        if not entry and line[:1] in ("#", "!"):
            continuing = False
            continue
        entry += line
        continuing = _odd_trailing_backslashes(entry)
        if continuing:
            entry = entry[:-1]
        elif entry:
            yield start, entry
            entry = ""
    if entry:
        yield start, entry


def _split(line: str) -> tuple[str, str]:
    """The raw (still escaped) key and value of a logical line."""
    key_end = value_start = len(line)
    has_separator = escaped = False
    for index, char in enumerate(line):
        if not escaped and (char in _SEPARATORS or char in _WHITESPACE):
            key_end, value_start, has_separator = index, index + 1, char in _SEPARATORS
            break
        escaped = char == "\\" and not escaped
    while value_start < len(line):
        char = line[value_start]
        if char not in _WHITESPACE:
            if has_separator or char not in _SEPARATORS:
                break
            has_separator = True
        value_start += 1
    return line[:key_end], line[value_start:]


def _unescape(text: str, line_number: int) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if char != "\\":
            out.append(char)
            continue
        char = text[index]
        index += 1
        if char == "u":
            digits = text[index:index + 4]
            if len(digits) < 4 or not _HEX_DIGITS.issuperset(digits):
                raise ValueError(f"line {line_number}: malformed \\uxxxx encoding: \\u{digits}")
            out.append(chr(int(digits, 16)))
            index += 4
        else:
            out.append(_ESCAPES.get(char, char))
    # \uXXXX escapes are UTF-16 code units, as in Java: join surrogate pairs into one character.
    return "".join(out).encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def parse_properties(text: str) -> dict[str, str]:
    """The key/value pairs of a ``.properties`` document (later duplicates win).

    Raises ValueError, naming the line, for a malformed ``\\uXXXX`` escape.
    """
    props: dict[str, str] = {}
    for number, line in _logical_lines(text):
        key, value = _split(line)
        props[_unescape(key, number)] = _unescape(value, number)
    return props


def load_properties(path: Union[str, "os.PathLike[str]"]) -> dict[str, str]:
    """:func:`parse_properties` of a file (UTF-8, or ISO-8859-1 when not valid UTF-8)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("iso-8859-1")
    return parse_properties(text)
