"""Sizes and durations as users write them: parsing, formatting, and the round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmuxtrain.core.units import (
    format_duration,
    format_mib,
    format_progress,
    parse_duration_s,
    parse_size_mib,
)


@pytest.mark.parametrize(
    ("text", "mib"),
    [
        ("20GiB", 20 * 1024),
        ("20GB", 20 * 1024),  # binary, like Slurm's --mem
        ("20G", 20 * 1024),
        ("20g", 20 * 1024),
        ("20 gib", 20 * 1024),
        (" 20 GiB ", 20 * 1024),
        ("512MiB", 512),
        ("512MB", 512),
        ("512M", 512),
        ("512m", 512),
        ("1.5TiB", 1536 * 1024),
        ("1.5T", 1536 * 1024),
        ("1TB", 1024 * 1024),
        ("1.5GiB", 1536),
        (".5G", 512),
        ("1024", 1024),  # a plain number is MiB
        ("0", 0),
        ("2048KiB", 2),
        ("100KiB", 1),  # part of a MiB rounds up: a request never shrinks
        (1024, 1024),  # YAML's `vram: 1024`
    ],
)
def test_parse_size_mib(text: str | int, mib: int) -> None:
    assert parse_size_mib(text) == mib


@pytest.mark.parametrize(
    "text", ["20 apples", "", "GiB", "-5G", "1..5G", "20 GiB GiB", "2e3", "20Gi B", "0x10", "ten"]
)
def test_parse_size_mib_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"bad size .*e\.g\. 20GiB"):
        parse_size_mib(text)


def test_parse_size_mib_message_quotes_the_input() -> None:
    with pytest.raises(ValueError) as info:
        parse_size_mib("20 apples")
    assert str(info.value).startswith("bad size '20 apples': use a number with MiB, GiB")


@pytest.mark.parametrize("value", [True, -1, None, 1.5, [1]])
def test_parse_size_mib_rejects_non_text(value: object) -> None:
    with pytest.raises(ValueError, match="bad size"):
        parse_size_mib(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("12h", 43200),
        ("2d", 172800),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("1H30M", 5400),
        ("1h30m15s", 5415),
        ("2d12h", 216000),
        ("1.5h", 5400),
        ("30min", 1800),
        ("2 hours", 7200),
        ("10 sec", 10),
        ("1h02m", 3720),
        ("1:30:00", 5400),  # H:MM:SS
        ("45:00", 2700),  # MM:SS
        ("90:00", 5400),  # leading field may exceed 59, as in Slurm
        ("1-00:00:00", 86400),  # Slurm's D-H:MM:SS
        ("1-12", 129600),  # D-H
        ("2-12:30", 217800),  # D-H:MM
        ("90", 90),  # plain number = seconds
        ("2.5", 2.5),
        (" 7 ", 7),
        (30, 30),
        (1.5, 1.5),
    ],
)
def test_parse_duration_s(text: str | float, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "h",
        "5x",
        "5 apples",
        "-5",
        "30m1h",  # out of order: a typo more likely than a meaning
        "1h1h",
        "1:60:00",
        "1:00:60",
        "61:60",
        "1:2:3:4",
        "1-2:60",
        "5ms",
        "1h30",
        "inf",
        "nan",
    ],
)
def test_parse_duration_s_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"bad duration .*1h30m"):
        parse_duration_s(text)


@pytest.mark.parametrize("value", [True, -1, float("inf"), float("nan"), None])
def test_parse_duration_s_rejects_bad_numbers(value: object) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration_s(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mib", "text"),
    [
        (0, "0 MiB"),
        (512, "512 MiB"),
        (1023, "1023 MiB"),
        (1024, "1 GiB"),
        (1536, "1.5 GiB"),
        (20 * 1024, "20 GiB"),
        (81559, "79.6 GiB"),  # an H100's total as nvidia-smi gives it
        (1024 * 1024, "1 TiB"),
        (1536 * 1024, "1.5 TiB"),
        (-512, "-512 MiB"),
    ],
)
def test_format_mib(mib: int, text: str) -> None:
    assert format_mib(mib) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.4, "0s"),
        (45, "45s"),
        (59.6, "1m00s"),
        (185, "3m05s"),
        (3599.6, "1h00m"),
        (3720, "1h02m"),
        (3725, "1h02m"),
        (90000, "1d01h"),
        (-45, "-45s"),
        (float("inf"), "?"),
        (float("nan"), "?"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(
    st.integers(0, 1023)  # MiB
    | st.integers(1, 1023).map(lambda g: g * 1024)  # whole GiB
    | st.integers(1, 4096).map(lambda t: t * 1024**2)  # whole TiB
)
def test_format_mib_round_trips_exact_sizes(mib: int) -> None:
    assert parse_size_mib(format_mib(mib).replace(" ", "")) == mib


@given(st.integers(min_value=0, max_value=2**40))
def test_format_mib_round_trips_within_its_precision(mib: int) -> None:
    back = parse_size_mib(format_mib(mib))
    # One decimal of GiB (or TiB): off by at most half of 0.1 unit, plus the round-up.
    unit = 1 if mib < 1024 else 1024 if mib < 1024**2 else 1024**2
    assert abs(back - mib) <= 0.05 * unit + 1


@given(st.integers(min_value=0, max_value=10**8))
def test_format_duration_round_trips_within_its_precision(seconds: int) -> None:
    back = parse_duration_s(format_duration(seconds))
    # Two units at most: exact below an hour, to the minute below a day, then to the hour.
    tolerance = 0 if seconds < 3600 else 60 if seconds < 86400 else 3600
    assert abs(back - seconds) <= tolerance


@given(
    st.integers(0, 400),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)
def test_unit_and_clock_forms_agree(d: int, h: int, m: int, s: int) -> None:
    total = d * 86400 + h * 3600 + m * 60 + s
    assert parse_duration_s(f"{d}d{h}h{m}m{s}s") == total
    assert parse_duration_s(f"{d}-{h}:{m:02d}:{s:02d}") == total
    assert parse_duration_s(f"{d * 24 + h}:{m:02d}:{s:02d}") == total


@given(st.text(max_size=12))
def test_parsers_raise_only_value_error(text: str) -> None:
    for parse in (parse_size_mib, parse_duration_s):
        try:
            result = parse(text)
        except ValueError:
            continue
        assert result >= 0


def test_format_progress_shows_the_parsers_share() -> None:
    assert format_progress({}) == ""
    assert format_progress({"epoch": 3.0}) == "ep 3"
    assert format_progress({"epoch": 3.0, "epochs": 5.0, "progress": 0.45}) == "ep 3/5 45%"
    assert format_progress({"step": 120.0, "steps": 500.0, "progress": 0.24}) == "120/500 24%"
    assert format_progress({"step": 120.0, "steps": 500.0, "progress": 0.24}, percent=False) == (
        "120/500"
    )
