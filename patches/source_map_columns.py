"""Keep a v3 source map true after text is inserted into one generated line.

Only the generated columns of one line move, so the rest of the `mappings` string (and every
source, name and original position) stays byte for byte. The inserted text itself gets an
unmapped segment: devtools show it as bundle code instead of blaming some unrelated source line.
"""

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_INDEX = {c: i for i, c in enumerate(_B64)}


class SourceMapError(ValueError):
    """The map is not a v3 source map whose mappings this module can read."""


def decode_segment(text: str) -> list[int]:
    """Base64 VLQ fields of one segment (relative values, as stored)."""
    values, shift, value = [], 0, 0
    for char in text:
        try:
            digit = _B64_INDEX[char]
        except KeyError:
            raise SourceMapError(f"not a base64 VLQ character: {char!r}") from None
        value += (digit & 31) << shift
        if digit & 32:
            shift += 5
            continue
        values.append(-(value >> 1) if value & 1 else value >> 1)
        shift, value = 0, 0
    if shift:
        raise SourceMapError(f"truncated VLQ segment: {text!r}")
    return values


def encode_segment(values: list[int]) -> str:
    out = []
    for number in values:
        vlq = (-number << 1) | 1 if number < 0 else number << 1
        while True:
            digit, vlq = vlq & 31, vlq >> 5
            out.append(_B64[digit | 32 if vlq else digit])
            if not vlq:
                break
    return "".join(out)


def _line_segments(mappings: str, line: int) -> tuple[list[str], list[list[int]]]:
    """All lines, and one line's segments as [absolute generated column, *relative other fields]."""
    lines = mappings.split(";")
    if line >= len(lines):
        raise SourceMapError(f"the map has {len(lines)} generated lines, none numbered {line}")
    segments, column = [], 0
    for text in lines[line].split(",") if lines[line] else []:
        fields = decode_segment(text)
        if not fields:
            raise SourceMapError("empty segment in mappings")
        column += fields[0]
        segments.append([column] + fields[1:])
    return lines, segments


def _join(lines: list[str], line: int, segments: list[list[int]]) -> str:
    encoded, previous = [], 0
    for column, *rest in segments:
        encoded.append(encode_segment([column - previous] + rest))
        previous = column
    lines[line] = ",".join(encoded)
    return ";".join(lines)


def insert_columns(mappings: str, line: int, column: int, length: int) -> str:
    """Mappings for the same file after `length` UTF-16 units were inserted at (line, column).

    Segments at or after `column` move right; an unmapped segment marks the inserted text.
    Other fields are relative across segments, but an unmapped segment carries none, so
    nothing outside this line changes.
    """
    lines, segments = _line_segments(mappings, line)
    at = next((i for i, s in enumerate(segments) if s[0] >= column), len(segments))
    for segment in segments[at:]:
        segment[0] += length
    segments.insert(at, [column])
    return _join(lines, line, segments)


def remove_columns(mappings: str, line: int, column: int, length: int) -> str:
    """Undo `insert_columns(mappings, line, column, length)`."""
    lines, segments = _line_segments(mappings, line)
    at = next((i for i, s in enumerate(segments) if s == [column]), None)
    if at is None:
        raise SourceMapError(f"no unmapped segment at line {line}, column {column} to remove")
    del segments[at]
    for segment in segments[at:]:
        segment[0] -= length
    return _join(lines, line, segments)


def utf16_column(text: str) -> int:
    """Source map columns count UTF-16 code units, not Python characters."""
    return len(text.encode("utf-16-le")) // 2

