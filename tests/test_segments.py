"""SMS segment counting: inbox/segments.py and static/segments.js.

The hand-picked cases pin down the rules; the reference tests run node on a
corpus through Twilio's own calculator (npm ``sms-segments-calculator``,
pinned in tests/node/package.json) and through static/segments.js, and
require all three to agree. They need ``npm ci --prefix tests/node`` first.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inbox.segments import GSM7_BASIC, GSM7_EXTENSION, SegmentCount, count_segments

NODE_DIR = Path(__file__).parent / "node"
REFERENCE_SCRIPT = NODE_DIR / "segments_reference.js"
REFERENCE_PACKAGE = NODE_DIR / "node_modules" / "sms-segments-calculator"

E_ACUTE_DECOMPOSED = "e\u0301"  # "é" typed as e + combining acute: one grapheme


# --- Hand-picked cases ------------------------------------------------------


def test_empty_text_is_no_segment() -> None:
    assert count_segments("") == SegmentCount("GSM-7", characters=0, units=0, segments=0, per_segment=160)


def test_160_plain_characters_fit_in_one_segment() -> None:
    assert count_segments("a" * 160) == SegmentCount("GSM-7", 160, 160, segments=1, per_segment=160)


def test_161_plain_characters_need_two_segments_of_153() -> None:
    assert count_segments("a" * 161) == SegmentCount("GSM-7", 161, 161, segments=2, per_segment=153)


def test_split_gsm_segments_hold_153() -> None:
    assert count_segments("a" * 153 * 2).segments == 2
    assert count_segments("a" * (153 * 2 + 1)).segments == 3
    assert count_segments("a" * 153 * 3).segments == 3


def test_one_emoji_switches_whole_message_to_ucs2() -> None:
    result = count_segments("Hello " + "😀")
    # The emoji is one character but two UTF-16 code units.
    assert result == SegmentCount("UCS-2", characters=7, units=8, segments=1, per_segment=70)


def test_ucs2_holds_70_then_67_per_segment() -> None:
    assert count_segments("ê" * 70) == SegmentCount("UCS-2", 70, 70, segments=1, per_segment=70)
    assert count_segments("ê" * 71) == SegmentCount("UCS-2", 71, 71, segments=2, per_segment=67)
    assert count_segments("ê" * 67 * 2).segments == 2
    assert count_segments("ê" * (67 * 2 + 1)).segments == 3


def test_extension_characters_count_two_septets() -> None:
    for char in "[\\]^{|}~€\f":
        result = count_segments(char + "a")
        assert (result.encoding, result.characters, result.units) == ("GSM-7", 2, 3), repr(char)
    assert count_segments("a" * 158 + "€").segments == 1  # 160 septets
    assert count_segments("a" * 159 + "€").segments == 2  # 161 septets


def test_extension_character_is_not_split_across_segments() -> None:
    # 306 septets would fit in 2 x 153, but "{" would start at septet 153 of
    # the first segment, so it moves to the second, which then overflows.
    straddling = count_segments("a" * 152 + "{" + "a" * 152)
    assert (straddling.units, straddling.segments) == (306, 3)
    not_straddling = count_segments("a" * 153 + "{" + "a" * 151)
    assert (not_straddling.units, not_straddling.segments) == (306, 2)


def test_surrogate_pair_is_not_split_across_segments() -> None:
    straddling = count_segments("ê" * 66 + "😀" + "ê" * 66)
    assert (straddling.units, straddling.segments) == (134, 3)
    assert count_segments("ê" * 67 + "😀" + "ê" * 65).segments == 2


def test_grapheme_cluster_is_not_split_across_segments() -> None:
    # Twilio's calculator keeps what a reader sees as one character whole,
    # even when it is two BMP code units (e + combining accent).
    straddling = count_segments("ê" * 66 + E_ACUTE_DECOMPOSED + "ê" * 66)
    assert (straddling.characters, straddling.units, straddling.segments) == (134, 134, 3)
    flag = count_segments("ê" * 65 + "🇫🇷" + "ê" * 60)  # 4 code units, one flag
    assert (flag.units, flag.segments) == (129, 2)
    assert count_segments("ê" * 64 + "🇫🇷" + "ê" * 60).segments == 2


def test_e_acute_is_gsm_but_e_circumflex_is_not() -> None:
    assert count_segments("café").encoding == "GSM-7"
    assert count_segments("crêpe").encoding == "UCS-2"
    # Decomposed "é" is not the GSM character é.
    assert count_segments("caf" + E_ACUTE_DECOMPOSED).encoding == "UCS-2"


def test_gsm_basic_table_edges() -> None:
    # In GSM 03.38 though not in ASCII order: @ (0x00), $ (0x02), _ (0x11),
    # capital Ç (0x09), Greek capitals; CR and LF.
    assert count_segments("@$_Ç¤¡¿§ΔΩ\r\n").encoding == "GSM-7"
    for char in ["`", "ç", "á", "\t", "A\u0308"]:  # the last is a decomposed Ä
        assert count_segments(char).encoding == "UCS-2", repr(char)
    assert len(GSM7_BASIC) == 127  # 128 positions, less the escape (0x1B)
    assert len(GSM7_EXTENSION) == 10


def test_extension_characters_cost_one_unit_in_ucs2() -> None:
    # In UCS-2 every BMP character is one code unit, escapes don't exist.
    assert count_segments("{}ê").units == 3


def test_characters_are_code_points() -> None:
    result = count_segments("👨‍👩‍👧")  # man ZWJ woman ZWJ girl
    assert (result.characters, result.units, result.segments) == (5, 8, 1)


# --- Against Twilio's calculator (and static/segments.js) ------------------


@dataclass(frozen=True)
class ReferenceResult:
    text: str
    reference: dict[str, Any]
    javascript: dict[str, Any]


def _run_node(texts: list[str]) -> list[ReferenceResult]:
    if not REFERENCE_PACKAGE.is_dir():
        pytest.fail(
            "Twilio's sms-segments-calculator is not installed in tests/node/node_modules: "
            "run `npm ci --prefix tests/node`"
        )
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; it is needed to run tests/node/segments_reference.js")
    completed = subprocess.run(
        [node, str(REFERENCE_SCRIPT)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"segments_reference.js failed ({completed.returncode}):\n{completed.stderr}")
    results = json.loads(completed.stdout)
    assert len(results) == len(texts)
    return [ReferenceResult(text, r["reference"], r["ours"]) for text, r in zip(texts, results, strict=True)]


def _mismatches(results: list[ReferenceResult]) -> list[str]:
    problems: list[str] = []
    for result in results:
        ours = count_segments(result.text)
        reference = result.reference
        # The one intended difference: the calculator reports 1 segment for
        # an empty message; nothing is sent, so we say 0.
        expected_segments = reference["segments"] if result.text else 0
        expected = (reference["encoding"], expected_segments, reference["units"])
        actual = (ours.encoding, ours.segments, ours.units)
        javascript = {
            "encoding": ours.encoding,
            "characters": ours.characters,
            "units": ours.units,
            "segments": ours.segments,
            "perSegment": ours.per_segment,
        }
        if actual != expected:
            problems.append(f"{result.text!r}: python {actual} != twilio {expected}")
        if result.javascript != javascript:
            problems.append(f"{result.text!r}: segments.js {result.javascript} != python {javascript}")
    return problems


# Pools for generated text. Everything here is segmented into grapheme
# clusters the same way by the calculator's (2017) grapheme-splitter and by
# our approximation; newer ZWJ sequences such as "🐻‍❄️" are not (see the
# grapheme cluster notes in inbox/segments.py).
GSM_BASIC_POOL = sorted(GSM7_BASIC)
EXTENSION_POOL = sorted(GSM7_EXTENSION)
ACCENTED_POOL = [*list("êçáíóúâôãõëïÿœšžłńśćřőű"), E_ACUTE_DECOMPOSED, "ñ"]
EMOJI_POOL = ["😀", "🎉", "👍", "🚀", "✅", "☺", "❤", "❤️", "👍🏽", "🇫🇷", "🇯🇵", "1️⃣", "👨‍👩‍👧", "🏳️‍🌈", "🙏🏿"]
CJK_POOL = [*list("中文字日本語你好東京한국어"), "𠜎", "𠀀", "𩸽"]
NON_GSM_POOL = ACCENTED_POOL + EMOJI_POOL + CJK_POOL

# Lengths around segment boundaries (70, 2 x 67, 160, 2 x 153, ...) find
# off-by-one errors that uniform lengths mostly miss.
BOUNDARY_LENGTHS = [67, 70, 134, 153, 160, 201, 268, 306, 335, 400]


def _generated_corpus(size: int = 200, seed: int = 20240611) -> list[str]:
    rng = random.Random(seed)
    corpus: list[str] = []
    for _ in range(size):
        if rng.random() < 0.5:
            length = rng.randint(0, 400)
        else:
            length = max(0, min(400, rng.choice(BOUNDARY_LENGTHS) + rng.randint(-3, 3)))
        kind = rng.choice(["gsm", "gsm+extension", "gsm+one-other", "mixed"])
        corpus.append(_generated_text(rng, kind, length))
    return corpus


def _generated_text(rng: random.Random, kind: str, length: int) -> str:
    if kind == "gsm":
        return "".join(rng.choice(GSM_BASIC_POOL) for _ in range(length))
    if kind == "gsm+extension":
        pieces = [rng.choice(EXTENSION_POOL if rng.random() < 0.1 else GSM_BASIC_POOL) for _ in range(length)]
        return "".join(pieces)
    if kind == "gsm+one-other":
        pieces = [rng.choice(GSM_BASIC_POOL) for _ in range(max(length, 1))]
        pieces[rng.randrange(len(pieces))] = rng.choice(NON_GSM_POOL)
        return "".join(pieces)
    pools = [GSM_BASIC_POOL, EXTENSION_POOL, ACCENTED_POOL, EMOJI_POOL, CJK_POOL]
    weights = [6, 1, 1, 1, 1]
    return "".join(rng.choice(rng.choices(pools, weights)[0]) for _ in range(length))


# Hand-made boundary cases, also checked against the calculator.
BOUNDARY_CASES = [
    "",
    "a" * 160,
    "a" * 161,
    "a" * 158 + "€",
    "a" * 159 + "€",
    "a" * 152 + "{" + "a" * 152,
    "a" * 153 + "{" + "a" * 151,
    "a" * 152 + "\f" + "a" * 200,
    "ê" * 70,
    "ê" * 71,
    "ê" * 69 + "😀",
    "ê" * 68 + "😀",
    "ê" * 66 + "😀" + "ê" * 66,
    "ê" * 67 + "😀" + "ê" * 65,
    "ê" * 66 + E_ACUTE_DECOMPOSED + "ê" * 66,
    "ê" * 65 + "🇫🇷" + "ê" * 60,
    "ê" * 64 + "👍🏽" + "ê" * 70,
    "ê" * 60 + "👨‍👩‍👧" + "ê" * 70,
    "a\r\nb",
    "\n" + "\u0301",
    "{}[]~^|\\€" * 20,
    "{}[]~^|\\€ê" * 20,
]


def test_generated_corpus_matches_twilio_calculator() -> None:
    corpus = _generated_corpus()
    # The corpus must actually exercise both encodings and split messages.
    counts = [count_segments(text) for text in corpus]
    assert {count.encoding for count in counts} == {"GSM-7", "UCS-2"}
    assert max(count.segments for count in counts) >= 5

    problems = _mismatches(_run_node(corpus + BOUNDARY_CASES))
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems[:20])


def test_gsm_table_matches_twilio_calculator() -> None:
    # Every character of Latin-1, Latin Extended A/B, Greek and the General
    # Punctuation/currency blocks alone: the encoding and septet count show
    # exactly which characters are GSM-7 basic, extension, or neither.
    code_points = [*range(0x00, 0x250), *range(0x370, 0x400), *range(0x2000, 0x20D0)]
    texts = [chr(cp) for cp in code_points]
    problems = _mismatches(_run_node(texts))
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems[:20])
