#!/usr/bin/env python3
"""Writes nfc.json beside this script: strings and their NFC as Python's unicodedata.normalize computes it, the
independent reference for MoeSharp's hand-written NFC (Text/Nfc.cs). Run from the repository root:
  python3 tests/MoeSharp.Tests/Text/Golden/gen_nfc_golden.py
The Unicode version (unicodedata.unidata_version) is written into the file; the test checks it is the one
src/MoeSharp/Text/NfcTables.cs carries."""
import json
import os
import random
import unicodedata as ud

HERE = os.path.dirname(os.path.abspath(__file__))

named = [
    ("Latin with combining marks", "e\u0301 a\u0300 n\u0303o c\u0327a u\u0308ber A\u030A"),
    ("already composed", "caf\u00e9 na\u00efve \u00c5ngstr\u00f6m"),
    ("ASCII only", "Hello, world! 12+30=42"),
    ("two marks on one letter", "a\u0323\u0302 e\u0302\u0301 o\u031b\u0300"),
    ("Vietnamese decomposed", "Tie\u0302\u0301ng Vie\u0323\u0302t co\u0301 da\u0302\u0301u"),
    ("Vietnamese composed", "Ti\u1ebfng Vi\u1ec7t c\u00f3 d\u1ea5u"),
    ("Hangul jamo LV and LVT", "\u1100\u1161 \u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af"),
    ("Hangul syllables stay", "\ud55c\uad6d\uc5b4 \uac00\uac01"),
    ("Hangul syllable plus trailing jamo", "\uac00\u11a8 \ud55c\u11a8"),
    ("Hangul LV plus non-T jamo", "\u1100\u1161\u1161 \uac00\u11a7"),
    ("singletons", "\u212b \u2126 \u212a \u0340\u0341 \u0374 \u037e \u0387 \u1fbe"),
    ("composition exclusions", "\u0958 \u0959 \u095a \u09dc \u0a33 \u0f43 \ufb1d \ufb2a \u2adc"),
    ("exclusion decomposed stays", "\u0915\u093c \u05e9\u05c1"),
    ("non-starter decompositions", "\u0344 \u0f73 \u0f75 \u0f81"),
    ("reordering needed", "a\u0301\u0323 q\u0307\u0323 a\u0328\u0301\u0327 \u1e0b\u0323"),
    ("blocked by equal class", "a\u0301\u0301 a\u0308\u0304"),
    ("blocked by a starter", "a\u05c4\u0301 e\u0331\u0301"),
    ("mark with no base", "\u0301a \u0323\u0302"),
    ("astral composition", "\U00011099\U000110ba \U00011131\U00011127 \U000114b9\U000114ba"),
    ("astral excluded", "\U0001d15e \U0001d15f \U0001d160 \U0001d1bb"),
    ("astral plain and emoji", "\U0001f600 \U00020000 \U0001d400e\u0301"),
    ("Greek with tonos and dialytika", "\u03b9\u0308\u0301 \u03c5\u0313\u0342 \u1fb3\u0301"),
    ("Cyrillic breve", "\u0438\u0306 \u0435\u0308"),
    ("CJK compatibility ideographs", "\uf900 \uf9dc \ufa10 \U0002f800"),
    ("Indic two-part vowels", "\u0b47\u0b3e \u0bc6\u0bbe \u0dd9\u0dcf\u0dca"),
    ("compatibility forms untouched", "\ufb01 \u2460 \uff21 \u00bd \u1e9b\u0323"),
]

cases = [[n, s, ud.normalize("NFC", s)] for n, s in named]

# Every code point with a canonical decomposition: itself, and its NFD, each on its own.
for cp in range(0x110000):
    if 0xD800 <= cp <= 0xDFFF or 0xAC00 <= cp <= 0xD7A3:
        continue
    d = ud.decomposition(chr(cp))
    if d and not d.startswith("<"):
        nfd = ud.normalize("NFD", chr(cp))
        cases.append([f"U+{cp:04X}", chr(cp), ud.normalize("NFC", chr(cp))])
        cases.append([f"NFD of U+{cp:04X}", nfd, ud.normalize("NFC", nfd)])

# Random strings drawn from where NFC has work to do: bases, marks of many classes, jamo, excluded and astral.
rng = random.Random(11)
pools = [
    list(range(0x41, 0x7B)), list(range(0xC0, 0x180)), list(range(0x300, 0x370)), list(range(0x591, 0x5C8)),
    list(range(0x900, 0x980)), list(range(0xF40, 0xF90)), list(range(0x1100, 0x1200)), list(range(0xAC00, 0xAC40)),
    list(range(0x1E00, 0x1F00)), list(range(0x1F00, 0x2000)), list(range(0x3099, 0x309B)) + list(range(0x304B, 0x3060)),
    list(range(0x11099, 0x110BB)), list(range(0x1D15E, 0x1D16F)), [0x212B, 0x2126, 0x0344, 0x0F73, 0xFB2A, 0x2ADC],
]
for i in range(1500):
    s = "".join(chr(rng.choice(rng.choice(pools))) for _ in range(rng.randint(1, 8)))
    cases.append([f"random {i}", s, ud.normalize("NFC", s)])

with open(os.path.join(HERE, "nfc.json"), "w", encoding="ascii", newline="\n") as f:
    # One [name, input, NFC] case a line, non-ASCII as \\u escapes.
    f.write('{"unicode_version": "%s", "generator": "tests/MoeSharp.Tests/Text/Golden/gen_nfc_golden.py", "cases": [\n' % ud.unidata_version)
    f.write(",\n".join(json.dumps(c, ensure_ascii=True) for c in cases))
    f.write("\n]}\n")
print(f"nfc.json: Unicode {ud.unidata_version}, {len(cases)} cases")
