"""SMS segment counting, as Twilio counts it.

An SMS carries 140 octets of user data. How many characters fit depends on
the encoding the whole message needs:

* GSM-7 (GSM 03.38 default alphabet): 7-bit septets, so 160 per SMS. When a
  message is split, each part carries a 6-octet header (the UDH Twilio
  reserves), leaving room for 153 septets. Characters of the extension table
  need an escape septet first, so they cost two, and the two halves are never
  put in different parts.
* UCS-2: used as soon as a single character is outside GSM-7. 16-bit UTF-16
  code units, 70 per SMS, 67 per part when split. Characters outside the BMP
  (most emoji) take two code units, and are never cut in half.

The reference is Twilio's calculator, the npm package
``sms-segments-calculator`` (tests/test_segments.py runs both side by side).
Where it goes further than the rules above, we follow it:

* In UCS-2 it never splits a *grapheme cluster* (what a reader sees as one
  character: "e" + combining accent, a flag, an emoji with a skin tone or a
  ZWJ family) across parts, not just a surrogate pair. So we keep clusters
  whole too; see ``_graphemes`` for how closely we find them.

static/segments.js is the same algorithm for the browser; change both
together.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# The GSM 03.38 basic table, in table order 0x00..0x7F (rows of 16), without
# 0x1B, which is the escape to the extension table and not a character.
# Note what is *not* here: "`", lowercase "ç" (GSM has capital "Ç" at 0x09),
# "ê", "á" and most other accented letters.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# The GSM 03.38 extension table: each is sent as ESC + one septet. Form feed
# is in it too (ESC 0x0A).
GSM7_EXTENSION: frozenset[str] = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE = 160  # septets in an unsplit message: 140 octets * 8 / 7
GSM7_MULTI = 153  # (140 - 6 octets of header) * 8 / 7, rounded down
UCS2_SINGLE = 70  # 140 octets / 2
UCS2_MULTI = 67  # (140 - 6) / 2

ZWJ = "\u200d"
ZWNJ = "\u200c"


@dataclass(frozen=True)
class SegmentCount:
    """How a text would be sent as SMS.

    characters: Unicode code points, i.e. ``len(text)``. Chosen over grapheme
        clusters because it is what a server-side ``len()`` check counts, and
        it doesn't depend on the Unicode version of the browser. It differs
        from what a person sees only for combined characters (an accent typed
        as a separate mark, flags, skin tones, ZWJ emoji count 2 or more).
    units: what the limits are counted in: septets for GSM-7 (extension
        characters count 2), UTF-16 code units for UCS-2 (emoji usually 2).
    segments: number of SMS billed; 0 for empty text, which isn't sent
        (Twilio's calculator says 1).
    per_segment: the limit that applies: 160/70 while the text fits in one
        SMS, 153/67 once it is split.
    """

    encoding: Encoding
    characters: int
    units: int
    segments: int
    per_segment: int


def count_segments(text: str) -> SegmentCount:
    """Count the SMS segments ``text`` needs, the way Twilio does."""
    if _is_gsm7(text):
        encoding: Encoding = "GSM-7"
        sizes = [_septets(char) for char in text]
        single, multi = GSM7_SINGLE, GSM7_MULTI
    else:
        encoding = "UCS-2"
        sizes = _ucs2_atom_sizes(text)
        single, multi = UCS2_SINGLE, UCS2_MULTI
    segments = _pack(sizes, single, multi)
    return SegmentCount(
        encoding=encoding,
        characters=len(text),
        units=sum(sizes),
        segments=segments,
        per_segment=multi if segments > 1 else single,
    )


def _is_gsm7(text: str) -> bool:
    # One character outside both tables forces UCS-2 for the whole message.
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def _septets(char: str) -> int:
    # Extension characters are ESC + code, hence two septets.
    return 2 if char in GSM7_EXTENSION else 1


def _utf16_units(text: str) -> int:
    # Counted from code points instead of encoding, so that a lone surrogate
    # (possible in a Python str) counts 1 rather than raising.
    return sum(2 if ord(char) > 0xFFFF else 1 for char in text)


def _ucs2_atom_sizes(text: str) -> list[int]:
    """UTF-16 sizes of the pieces that must stay in one segment."""
    sizes: list[int] = []
    for cluster in _graphemes(text):
        size = _utf16_units(cluster)
        if size <= UCS2_MULTI:
            sizes.append(size)
        else:
            # A cluster longer than a whole segment ("zalgo" text) has to be
            # cut somewhere; cut between code points, never inside a pair.
            # (The reference counts an extra empty segment here instead.)
            sizes.extend(_utf16_units(char) for char in cluster)
    return sizes


def _pack(sizes: Sequence[int], single: int, multi: int) -> int:
    """Number of segments for pieces of the given sizes, filled in order.

    A piece that doesn't fit in what is left of a segment starts the next
    one, which is how extension pairs and grapheme clusters stay whole.
    """
    total = sum(sizes)
    if total == 0:
        return 0
    if total <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:
            segments, used = segments + 1, 0
        used += size
    return segments


# --- Grapheme clusters -----------------------------------------------------
#
# Python's standard library has no grapheme segmentation, so this is a small
# approximation of Unicode's extended grapheme clusters (UAX #29) that covers
# what shows up in messages: combining marks, variation selectors, emoji
# skin tones, ZWJ sequences, tag sequences (subdivision flags) and flag
# pairs. Not covered: Hangul conjoining jamo (precomposed syllables, which
# keyboards produce, are single code points anyway) and prepended marks.
# It only matters in UCS-2 when a cluster straddles a segment boundary.
#
# The reference splits clusters with the 2017 grapheme-splitter package
# (Unicode 10 rules), so for emoji ZWJ sequences newer than that, e.g.
# "🐻‍❄️", it sees two clusters where we (and current phones) see one. We keep
# the modern behaviour: in a rare boundary case we may count one segment
# more than Twilio's calculator, never fewer.


def _graphemes(text: str) -> list[str]:
    clusters: list[str] = []
    for char in text:
        if clusters and _continues_cluster(clusters[-1], char):
            clusters[-1] += char
        else:
            clusters.append(char)
    return clusters


def _continues_cluster(cluster: str, char: str) -> bool:
    base, previous = cluster[0], cluster[-1]
    if _is_control(base) or _is_control(char):
        # Nothing attaches to or onto a line break or other control (GB4/5);
        # this also keeps CR LF as two, as the reference does.
        return False
    if _is_extend(char):
        return True
    if _is_emoji_modifier(char):
        # A skin tone joins an emoji before it, not a letter ("a🏻" is two).
        return unicodedata.category(previous) == "So"
    if previous == ZWJ:
        # Emoji ZWJ sequences (GB11); "So" (other symbol) stands in for
        # Extended_Pictographic, which unicodedata doesn't expose.
        return unicodedata.category(char) == "So"
    if _is_regional_indicator(char):
        # Flags are pairs of regional indicators (GB12/13).
        return len(cluster) == 1 and _is_regional_indicator(base)
    return False


def _is_extend(char: str) -> bool:
    # Combining marks (accents, variation selectors, keycap), ZWJ/ZWNJ and the
    # tag characters of subdivision flags all attach to what precedes them.
    return unicodedata.category(char).startswith("M") or char in (ZWJ, ZWNJ) or 0xE0020 <= ord(char) <= 0xE007F


def _is_control(char: str) -> bool:
    category = unicodedata.category(char)
    if category in ("Cc", "Zl", "Zp"):
        return True
    # Format characters are controls too, except the ones that join things.
    return category == "Cf" and not _is_extend(char)


def _is_emoji_modifier(char: str) -> bool:
    return 0x1F3FB <= ord(char) <= 0x1F3FF


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "SegmentCount", "count_segments"]
