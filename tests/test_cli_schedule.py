"""``ihub schedule next``: fire times of an NCRONTAB expression as the Functions host reads it."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from devtools.cli import main
from tests.conftest import ROOT


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    with pytest.raises(SystemExit) as exited:
        sys.exit(main(["schedule", "next", *argv]))
    out, err = capsys.readouterr()
    code = exited.value.code
    return int(code) if isinstance(code, int) else 1, out.splitlines(), err


def test_next_five_from_a_given_time(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = run(capsys, "0 */5 * * * *", "--from", "2024-01-01T00:00:00Z")
    assert code == 0, err
    assert lines == [
        "2024-01-01T00:05:00Z",
        "2024-01-01T00:10:00Z",
        "2024-01-01T00:15:00Z",
        "2024-01-01T00:20:00Z",
        "2024-01-01T00:25:00Z",
    ]


def test_the_issue_example_day_and_weekday_both_match(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, "0 45 16 1 * Mon", "--from", "2003-01-01T00:00:00Z", "--count", "3")
    assert code == 0
    assert lines == ["2003-09-01T16:45:00Z", "2003-12-01T16:45:00Z", "2004-03-01T16:45:00Z"]


@pytest.mark.parametrize(
    ("expr", "first"),
    [
        ("0 0 0 * * sunday", "2024-01-07T00:00:00Z"),
        ("0 0 0 1 February *", "2024-02-01T00:00:00Z"),
        ("0 0 0 1 Augu *", "2024-08-01T00:00:00Z"),
        ("0 0 0 1 DECEM *", "2024-12-01T00:00:00Z"),
        ("0 30 9 * Jan Mon", "2024-01-01T09:30:00Z"),
        ("30 9 * * 1-5", "2024-01-01T09:30:00Z"),  # five fields: classic cron at second 0
    ],
)
def test_names_and_classic_cron(capsys: pytest.CaptureFixture[str], expr: str, first: str) -> None:
    code, lines, _ = run(capsys, expr, "--from", "2024-01-01T00:00:00Z", "--count", "1")
    assert (code, lines) == (0, [first])


def test_strictly_after_from_and_offsets_are_converted_to_utc(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(capsys, "0 0 10 * * *", "--from", "2024-01-01T12:00:00+02:00", "--count", "2")
    assert (code, lines) == (0, ["2024-01-02T10:00:00Z", "2024-01-03T10:00:00Z"])
    code, lines, _ = run(capsys, "0 0 10 * * *", "--from", "2024-01-01T10:00:00", "--count", "1")  # no offset: UTC
    assert (code, lines) == (0, ["2024-01-02T10:00:00Z"])


def test_default_is_from_now(capsys: pytest.CaptureFixture[str]) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    code, lines, _ = run(capsys, "* * * * * *")
    assert code == 0 and len(lines) == 5
    times = [datetime.strptime(line, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for line in lines]
    assert times[0] > before and all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(times))


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 0 0 * * Funday", "error: day-of-week: 'Funday' is not a day name or number 0-6"),
        ("0 0 0 * * 7", "error: day-of-week: 7 is out of range 0-6"),
        ("0 0 24 * * *", "error: hour: 24 is out of range 0-23"),
        ("0 0 0 * Foo *", "error: month: 'Foo' is not a month name or number 1-12"),
        ("0 1,,2 * * * *", "error: minute: empty item in list"),
        ("* * * *", "error: expected 6 fields"),
        ("00:05:00", "TimeSpan"),
    ],
)
def test_an_expression_ncrontab_rejects_exits_2_naming_the_field(
    capsys: pytest.CaptureFixture[str], expr: str, message: str
) -> None:
    code, lines, err = run(capsys, expr, "--from", "2024-01-01T00:00:00Z")
    assert code == 2 and lines == []
    assert message in err


@pytest.mark.parametrize("start", ["yesterday", "2024-13-01T00:00:00Z", "", "2024-01-01T25:00:00Z"])
def test_a_bad_from_exits_2(capsys: pytest.CaptureFixture[str], start: str) -> None:
    code, lines, err = run(capsys, "0 */5 * * * *", "--from", start)
    assert code == 2 and lines == []
    assert "--from" in err and "ISO 8601" in err


@pytest.mark.parametrize("count", ["0", "-1", "x", "1.5", "\u0663"])
def test_a_bad_count_exits_2(capsys: pytest.CaptureFixture[str], count: str) -> None:
    code, _, err = run(capsys, "0 */5 * * * *", "--count", count)
    assert code == 2 and "--count" in err


def test_a_schedule_that_never_fires_is_accepted_as_the_host_does(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = run(capsys, "0 0 0 30 Feb *", "--from", "2024-01-01T00:00:00Z")
    assert code == 0 and lines == []
    assert "0 of 5" in err and "30 never occurs in February" in err


def test_the_calendar_ends_in_9999(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = run(capsys, "0 0 0 1 1 *", "--from", "9998-06-01T00:00:00Z")
    assert code == 0 and lines == ["9999-01-01T00:00:00Z"]
    assert "1 of 5" in err and "9999-12-31" in err


def test_the_installed_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "devtools.cli", "schedule", "next", "0 30 9 * * 1-5", "--from", "2024-01-05T09:30:00Z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "2024-01-08T09:30:00Z"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line) for line in result.stdout.splitlines())
    bad = subprocess.run(
        [sys.executable, "-m", "devtools.cli", "schedule", "next", "0 0 0 * * Funday"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: day-of-week: 'Funday' is not a day name or number 0-6"
