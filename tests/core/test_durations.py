"""Go durations parse to the seconds Decimal arithmetic gives, whole numbers without importing
decimal (a `stoker` start-up does not pay for it, issue 18)."""

from __future__ import annotations

import random
import subprocess
import sys
from decimal import Decimal

from stoker_core.durations import _PART, _UNITS_NS, parse_duration


def by_decimal(text: str) -> float:
    """The seconds of a valid duration, summed in Decimal as parse_duration once did."""
    body = text.lstrip("+-")
    sign = -1 if text.startswith("-") else 1
    total = sum(
        (Decimal(m.group(1)) * _UNITS_NS[m.group(2)] for m in _PART.finditer(body)), Decimal(0)
    )
    return sign * float(total / Decimal(1_000_000_000))


def durations(count: int) -> list[str]:
    rng = random.Random(18)
    found = ["60s", "1m30s", "250ms", "1.5h", "-30s", "+5m", ".5s", "1.s", "3h2m1s500ms20us7ns"]
    found += ["9" * 28 + "ns", "9" * 29 + "h", "1" + "0" * 19 + "h", "0.000000001ns", "1µs"]
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 4)):
            number = str(rng.randint(0, 10 ** rng.randint(0, 30)))
            if rng.random() < 0.3:
                number += "." + str(rng.randint(0, 10 ** rng.randint(0, 12)))
            parts.append(number + rng.choice(["ns", "us", "µs", "ms", "s", "m", "h"]))
        found.append(rng.choice(["", "-", "+"]) + "".join(parts))
    return found


def test_every_duration_parses_to_the_seconds_decimal_arithmetic_gives() -> None:
    for text in durations(3000):
        assert repr(parse_duration(text)) == repr(by_decimal(text)), text


def test_a_whole_duration_is_parsed_without_importing_decimal() -> None:
    code = "import sys; from stoker_core.durations import parse_duration as p; "
    code += "p('60s'); p('1h30m'); print('decimal' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
