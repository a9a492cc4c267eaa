"""The ``dialnexa-async`` command line, run in-process against the local simulator."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import dialnexa_async as dnx
from dialnexa_async.cli import main, run
from dialnexa_async.cli._args import parse_args
from dialnexa_async.cli._ids import parse_ids
from dialnexa_async.cli._output import CSV_COLUMNS, CsvFormat, ResultWriter
from dialnexa_async.cli._progress import BarReporter, LineReporter
from dialnexa_async.cli._resume import scan_csv, scan_jsonl
from dialnexa_async.testing import Simulator, lead_payload

pytestmark = pytest.mark.integration

KEY = "sk_cli_0123456789_never_print_me"


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Simulator]:
    """A simulator accepting ``KEY``, with the CLI's environment pointing at it."""
    async with Simulator(api_key=KEY) as simulator:
        monkeypatch.setenv("DIALNEXA_API_KEY", KEY)
        monkeypatch.setenv("DIALNEXA_BASE_URL", simulator.base_url)
        yield simulator


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key nor base URL in the environment."""
    monkeypatch.delenv("DIALNEXA_API_KEY", raising=False)
    monkeypatch.delenv("DIALNEXA_BASE_URL", raising=False)


class Cli:
    """Runs the CLI in the test's event loop and returns (exit status, stdout, stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        self._capsys.readouterr()
        code = await run(list(argv))
        out, err = self._capsys.readouterr()
        assert KEY not in out + err
        assert "Traceback" not in err
        return code, out, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """The in-process CLI runner."""
    return Cli(capsys)


def expected(lead_id: str) -> dict[str, Any]:
    """The lead the simulator serves for ``lead_id``, as ``Lead.to_dict()`` gives it."""
    payload = lead_payload(lead_id)
    return {
        "name": None,
        "metadata": {},
        "notes": {},
        "call_log_id": None,
        **payload,
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON Lines file; fails on a torn or invalid line."""
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def write_ids(path: Path, lines: list[str]) -> str:
    """Write an input file and return its path as a string."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


# --- get ---------------------------------------------------------------------------------


async def test_get_prints_one_json_line_per_lead_when_piped(sim: Simulator, cli: Cli) -> None:
    """Piped output is one compact JSON object per id, equal to what the server sent."""
    code, out, err = await cli("get", "lead_a1", "lead_b2")
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert [json.loads(line) for line in lines] == [expected("lead_a1"), expected("lead_b2")]


async def test_get_pretty_prints_on_a_terminal(
    sim: Simulator, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal each lead is indented JSON spread over several lines."""
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, out, _ = await cli("get", "lead_a1")
    assert code == 0
    assert out.startswith('{\n  "')
    assert json.loads(out) == expected("lead_a1")


async def test_get_reports_a_missing_lead_on_stderr_and_exits_1(sim: Simulator, cli: Cli) -> None:
    """A failed id prints one typed, short line on stderr; the found lead still prints."""
    code, out, err = await cli("get", "lead_a1", "missing_x")
    assert code == 1
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["lead_a1"]
    assert err == "missing_x: NotFoundError 404: Lead not found\n"


async def test_get_reads_the_key_from_a_file(
    sim: Simulator, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--api-key-file supplies the key (over the environment); a wrong one is a 401 per id."""
    monkeypatch.setenv("DIALNEXA_API_KEY", "sk_wrong")
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    code, out, _ = await cli("get", "--api-key-file", str(key_file), "lead_a1")
    assert code == 0
    assert json.loads(out)["id"] == "lead_a1"

    code, out, err = await cli("get", "lead_a1")
    assert code == 1
    assert out == ""
    assert err == "lead_a1: AuthenticationError 401: Invalid API key\n"


@pytest.mark.usefixtures("no_env")
async def test_get_without_a_key_is_a_usage_error(cli: Cli) -> None:
    """No key anywhere: one clear line, exit 2, nothing sent."""
    code, out, err = await cli("get", "--base-url", "http://127.0.0.1:9/v1", "lead_a1")
    assert code == 2
    assert out == ""
    assert err == (
        "dialnexa-async: error: no API key: set DIALNEXA_API_KEY or pass --api-key-file PATH\n"
    )


async def test_get_refuses_malformed_ids_before_any_request(sim: Simulator, cli: Cli) -> None:
    """An id with whitespace or a control character is a usage error and nothing is sent."""
    code, out, err = await cli("get", "lead_ok", "lead 1", "lead\x00x")
    assert code == 2
    assert out == ""
    assert "2 malformed ids in the arguments" in err
    assert "argument 2: 'lead 1' contains whitespace" in err
    assert "argument 3: 'lead\\x00x' contains a control character (U+0000)" in err
    assert sim.stats.requests == 0


@pytest.mark.usefixtures("no_env")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["get"], "the following arguments are required: ID"),
        (["get", "--api-key", KEY, "lead_1"], "there is no --api-key flag"),
        (["fetch", "--input", "x", f"--api-key={KEY}"], "there is no --api-key flag"),
        (["fetch", "--output", "x.jsonl"], "the following arguments are required: --input"),
        (["fetch", "--input", "x", "--concurrency", "0"], "must be at least 1"),
        (["fetch", "--input", "x", "--rate-limit", "nan"], "must be a positive number"),
        (["demo", "--count", "many"], "expected a whole number"),
    ],
)
def test_bad_flags_exit_2_from_main(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Flag errors return 2 from main() with one message; a key given as a flag is not echoed."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert message in err
    assert "Traceback" not in err
    assert KEY not in out + err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "--port", "99999"], "argument --port: must be a port number within 0..65535"),
        (["simulate", "--port=-1"], "argument --port: must be a port number within 0..65535"),
        (["simulate", "--rate-window", "-1"], "argument --rate-window: must be a positive number"),
        (["simulate", "--rate-window", "nan"], "argument --rate-window: must be a positive number"),
        (["simulate", "--latency", "inf"], "argument --latency: must be a finite number >= 0"),
        (["simulate", "--slow-body-delay", "nan"], "argument --slow-body-delay: must be a finite"),
        (["simulate", "--error-statuses", "503,999"], "expected HTTP statuses within 100..599"),
    ],
)
def test_out_of_range_simulator_numbers_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port past 65535 or a NaN duration is the simulate usage and one error, exit 2."""
    # parse_args, not main: were the flag accepted, main would serve until a signal.
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    _, err = capsys.readouterr()
    assert err.startswith("usage: dialnexa-async simulate ")
    assert err.splitlines()[-1].startswith("dialnexa-async simulate: error: ")
    assert message in err
    assert "Traceback" not in err


def test_simulate_takes_the_edge_ports() -> None:
    """0 (any free port) and 65535 are ports; the simulator's own flags all parse."""
    assert parse_args(["simulate", "--port", "0"]).port == 0
    ns = parse_args(["simulate", "--port", "65535", "--any-key", "--no-retry-after"])
    assert (ns.command, ns.port, ns.any_key, ns.retry_after) == ("simulate", 65535, True, False)


@pytest.mark.parametrize(
    ("argv", "unknown"),
    [
        (["get", "lead_1", "--bogus"], "--bogus"),
        (["fetch", "--input", "ids.txt", "--bogus", "1"], "--bogus 1"),
        (["demo", "--bogus"], "--bogus"),
        (["simulate", "--bogus"], "--bogus"),
        # No abbreviations: --rate is neither --rate-limit nor --rate-window.
        (["simulate", "--rate", "5"], "--rate 5"),
    ],
)
def test_unknown_flag_prints_the_subcommands_usage(
    argv: list[str], unknown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown flag after a subcommand shows that subcommand's usage, which lists its flags."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"usage: dialnexa-async {argv[0]} [-h] ")
    assert err.splitlines()[-1] == (
        f"dialnexa-async {argv[0]}: error: unrecognized arguments: {unknown}"
    )


_FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def help_sections(text: str) -> tuple[set[str], dict[str, list[str]]]:
    """The flags named in a --help text's usage, and the flags listed under each heading."""
    usage, _, body = text.partition("\n\n")
    sections: dict[str, list[str]] = {}
    heading = None
    for line in body.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            heading = line[:-1]
            sections[heading] = []
        elif heading is not None and line.startswith("  -"):
            # The flags end where two spaces start the help text.
            sections[heading] += _FLAG.findall(line.strip().split("  ")[0])
    return set(_FLAG.findall(usage)), sections


CONNECTION = ["--base-url", "--api-key-file", "--max-retries", "--timeout"]


@pytest.mark.parametrize("command", ["get", "fetch", "simulate", "demo"])
def test_help_lists_every_flag_once_under_its_heading(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every flag of the usage is listed once, and grouped flags are under their group."""
    assert main([command, "--help"]) == 0
    usage_flags, sections = help_sections(capsys.readouterr().out)
    listed = [flag for flags in sections.values() for flag in flags]
    assert sorted(listed) == sorted(set(listed)), "a flag is listed twice"
    # The usage names each flag by its first spelling: -h for -h/--help.
    assert set(listed) - {"--help"} == usage_flags
    if command in ("get", "fetch"):
        assert sections["connection"] == CONNECTION
    if command == "simulate":
        # Mutually exclusive pairs too: each stays in the group it was declared in.
        assert sections["options"] == ["-h", "--help"]
        assert sections["authentication"] == ["--api-key", "--any-key", "--forbidden-key"]
        assert {"--no-retry-after", "--retry-after-probability"} <= set(sections["rate limiting"])
        assert set(sections) >= {"network", "data", "fault injection"}


# --- fetch -------------------------------------------------------------------------------

FETCH_INPUT = [
    "# leads exported on Monday",
    "lead_a1",
    "  lead_b2  ",
    "",
    "missing_c3",
    "lead_a1",
    "lead_d4\r",
    "   # indented comment",
]
DISTINCT = ["lead_a1", "lead_b2", "missing_c3", "lead_d4"]


async def test_fetch_writes_jsonl_and_an_errors_file(
    sim: Simulator, cli: Cli, tmp_path: Path
) -> None:
    """Leads go to JSON Lines, failures to the errors file, each distinct id exactly once."""
    ids = write_ids(tmp_path / "ids.txt", FETCH_INPUT)
    out, errs = tmp_path / "leads.jsonl", tmp_path / "errors.jsonl"
    code, stdout, err = await cli(
        "fetch", "--input", ids, "--output", str(out), "--errors", str(errs)
    )
    assert code == 1
    assert stdout == ""
    leads = read_jsonl(out)
    assert sorted(lead["id"] for lead in leads) == ["lead_a1", "lead_b2", "lead_d4"]
    assert all(lead == expected(lead["id"]) for lead in leads)
    assert read_jsonl(errs) == [
        {
            "id": "missing_c3",
            "error": "NotFoundError",
            "status": 404,
            "message": "Lead not found",
            "request_id": read_jsonl(errs)[0]["request_id"],
        }
    ]
    assert read_jsonl(errs)[0]["request_id"].startswith("req_")
    # The repeated lead_a1 is fetched once.
    assert sorted(sim.stats.attempts_by_id.elements()) == sorted(DISTINCT)
    assert "note: 1 repeated ids in the input are fetched once" in err
    assert "fetched 4 of 4 ids" in err
    assert "  ok             3\n  NotFoundError  1\n" in err
    assert "requests 4: 0 retries, 0 rate-limited (429)" in err
    # A 404 is the same on every try: no suggestion to retry it.
    assert "--retry-errors" not in err


async def test_fetch_writes_csv_with_json_cells(sim: Simulator, cli: Cli, tmp_path: Path) -> None:
    """A .csv output gets the header and one row per lead; metadata and notes are JSON cells."""
    ids = write_ids(tmp_path / "ids.txt", [f"lead_{i}" for i in range(12)])
    out = tmp_path / "leads.csv"
    code, _, _ = await cli("fetch", "--input", ids, "--output", str(out))
    assert code == 0
    with out.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        rows = list(reader)
    assert sorted(row["id"] for row in rows) == sorted(f"lead_{i}" for i in range(12))
    for row in rows:
        lead = expected(row["id"])
        assert json.loads(row["metadata"]) == lead["metadata"]
        assert json.loads(row["notes"]) == lead["notes"]
        assert row["name"] == (lead["name"] or "")
        assert row["call_log_id"] == (lead["call_log_id"] or "")
        assert (row["status"], row["created_at"]) == (lead["status"], lead["created_at"])
    # Both response shapes were exercised.
    assert {bool(row["metadata"] != "{}") for row in rows} == {True, False}


async def test_fetch_without_output_writes_jsonl_to_stdout_from_stdin(
    sim: Simulator, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--input - reads stdin; without --output the leads are JSON Lines on stdout."""
    stdin = io.TextIOWrapper(io.BytesIO(b"lead_a1\nlead_b2\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, _ = await cli("fetch", "--input", "-")
    assert code == 0
    assert sorted(json.loads(line)["id"] for line in out.splitlines()) == ["lead_a1", "lead_b2"]


async def test_fetch_without_errors_file_prints_failures(
    sim: Simulator, cli: Cli, tmp_path: Path
) -> None:
    """Without --errors each failure is one short line on stderr, and nothing records it."""
    ids = write_ids(tmp_path / "ids.txt", ["lead_a1", "missing_1"])
    code, _, err = await cli("fetch", "--input", ids, "--output", str(tmp_path / "o.jsonl"))
    assert code == 1
    assert "missing_1: NotFoundError 404: Lead not found\n" in err


async def test_rerun_skips_settled_ids_and_retry_errors_fetches_failures(
    sim: Simulator, cli: Cli, tmp_path: Path
) -> None:
    """A rerun sends nothing for settled ids; --retry-errors refetches only the failures."""
    ids = write_ids(tmp_path / "ids.txt", [f"lead_{i}" for i in range(10)])
    out, errs = tmp_path / "o.jsonl", tmp_path / "e.jsonl"
    flags = ("fetch", "--input", ids, "--output", str(out), "--errors", str(errs))
    sim.config.known_ids = frozenset(f"lead_{i}" for i in range(7))
    code, _, _ = await cli(*flags)
    assert code == 1
    assert len(read_jsonl(out)) == 7
    assert len(read_jsonl(errs)) == 3

    sim.stats.reset()
    code, _, err = await cli(*flags)
    assert code == 1
    assert sim.stats.requests == 0
    assert (
        "nothing to fetch: all 10 ids are already in the output (7) or the errors file (3)" in err
    )

    sim.config.known_ids = None
    code, _, err = await cli(*flags, "--retry-errors")
    assert code == 0
    assert sorted(sim.stats.attempts_by_id) == ["lead_7", "lead_8", "lead_9"]
    assert read_jsonl(errs) == []
    assert sorted(lead["id"] for lead in read_jsonl(out)) == sorted(f"lead_{i}" for i in range(10))
    assert "skipped 7 ids settled by an earlier run (7 in the output, 0 in the errors file)" in err


async def test_retry_errors_is_suggested_only_for_failures_a_retry_may_mend(
    sim: Simulator, cli: Cli, tmp_path: Path
) -> None:
    """503s (this run's or recorded by an earlier one) earn the hint; 404s alone never do."""
    out, errs = tmp_path / "o.jsonl", tmp_path / "e.jsonl"

    async def fetch(ids: list[str], *extra: str) -> str:
        path = write_ids(tmp_path / "ids.txt", ids)
        flags = ("--output", str(out), "--errors", str(errs), "--max-retries", "0", *extra)
        code, _, err = await cli("fetch", "--input", path, *flags)
        assert code == 1
        return err

    sim.config.error_rate, sim.config.error_statuses = 1.0, (503,)
    err = await fetch(["lead_0", "lead_1"])
    assert "  InternalServerError  2\n" in err
    assert "2 ids failed; pass --retry-errors to fetch them again" in err

    sim.config.error_rate = 0.0
    # Two recorded 503s skipped, one new 404: only the 503s may pass on another try.
    err = await fetch(["lead_0", "lead_1", "missing_a"])
    assert "3 ids failed, 2 of them in a way another try may mend; pass --retry-errors" in err

    err = await fetch(["lead_0", "lead_1", "missing_a"], "--retry-errors")
    assert "  ok             2\n  NotFoundError  1\n" in err
    assert "pass --retry-errors" not in err

    # A recorded 404 skipped and a new one: nothing a retry would change.
    err = await fetch(["missing_a", "missing_b"])
    assert "skipped 1 ids settled by an earlier run (0 in the output, 1 in the errors file)" in err
    assert "pass --retry-errors" not in err
    assert sorted(record["status"] for record in read_jsonl(errs)) == [404, 404]


async def test_refused_key_stops_the_run_and_records_nothing(
    sim: Simulator, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 401 is about the key, not the ids: nothing goes to the errors file and exit is 1."""
    monkeypatch.setenv("DIALNEXA_API_KEY", "sk_revoked")
    ids = write_ids(tmp_path / "ids.txt", [f"lead_{i}" for i in range(50)])
    out, errs = tmp_path / "o.jsonl", tmp_path / "e.jsonl"
    code, _, err = await cli(
        "fetch", "--input", ids, "--output", str(out), "--errors", str(errs), "--concurrency", "2"
    )
    assert code == 1
    assert read_jsonl(out) == []
    assert read_jsonl(errs) == []
    assert "stopped: the server refused the API key (AuthenticationError: Invalid API key)" in err
    assert sim.stats.requests <= 2


async def test_a_base_url_without_the_version_stops_the_run_and_records_nothing(
    sim: Simulator, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route 404 ("Cannot GET /campaigns-leads/...") is the base URL's fault, not the ids':
    a warning names the missing version, the run stops at once, nothing goes to the output or
    errors file (which a rerun would skip), and the rerun with /v1 fetches every id."""
    monkeypatch.setenv("DIALNEXA_BASE_URL", sim.origin)
    ids = write_ids(tmp_path / "ids.txt", [f"lead_{i}" for i in range(50)])
    out, errs = tmp_path / "o.jsonl", tmp_path / "e.jsonl"
    argv = ("fetch", "--input", ids, "--output", str(out), "--errors", str(errs))
    with pytest.warns(UserWarning, match="no API version segment"):
        code, _, err = await cli(*argv, "--concurrency", "2")
    assert code == 1
    assert read_jsonl(out) == []
    assert read_jsonl(errs) == []
    assert (
        "stopped: the API has no such route (RouteNotFoundError: Cannot GET /campaigns-leads/"
        in err
    )
    assert "/v1" in err
    assert "--retry-errors" not in err
    assert sim.stats.requests <= 2
    monkeypatch.setenv("DIALNEXA_BASE_URL", sim.base_url)
    code, _, err = await cli(*argv)
    assert code == 0
    assert sorted(lead["id"] for lead in read_jsonl(out)) == sorted(f"lead_{i}" for i in range(50))
    assert read_jsonl(errs) == []


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "no ids in {input}: expected one id per line"),
        (["# only a comment", "", "   "], "no ids in {input}: expected one id per line"),
        (
            ["lead_1", "lead 2", "lead_3\tx", "lead\u200b4", ".", "a b", "c d", "e f"],
            "7 malformed ids in {input}, nothing was fetched: line 2: 'lead 2' contains "
            "whitespace (U+0020); line 3: 'lead_3\\tx' contains whitespace (U+0009); "
            "line 4: 'lead\\u200b4' contains a control character (U+200B); "
            "line 5: '.' is a dot segment; line 6: 'a b' contains whitespace (U+0020); "
            "and 2 more",
        ),
    ],
)
async def test_bad_input_is_refused_before_any_request(
    sim: Simulator, cli: Cli, tmp_path: Path, lines: list[str], message: str
) -> None:
    """Empty input and malformed ids: one clear line, exit 2, no request, no output file."""
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(lines), encoding="utf-8")
    out = tmp_path / "o.jsonl"
    code, stdout, err = await cli("fetch", "--input", str(ids), "--output", str(out))
    assert code == 2
    assert stdout == ""
    assert err == f"dialnexa-async: error: {message.format(input=ids)}\n"
    assert sim.stats.requests == 0
    assert not out.exists()


async def test_unreadable_input_and_unwritable_output_exit_2(
    sim: Simulator, cli: Cli, tmp_path: Path
) -> None:
    """A missing input, a non-UTF-8 input and an output in a missing folder are usage errors."""
    missing = tmp_path / "nope.txt"
    code, _, err = await cli("fetch", "--input", str(missing))
    assert (code, err) == (
        2,
        f"dialnexa-async: error: cannot read input {missing}: No such file or directory\n",
    )

    latin = tmp_path / "latin1.txt"
    latin.write_bytes(b"lead_1\nlead_\xe9\n")
    code, _, err = await cli("fetch", "--input", str(latin))
    assert (code, err) == (2, f"dialnexa-async: error: {latin} is not UTF-8 text (line 2)\n")

    ids = write_ids(tmp_path / "ids.txt", ["lead_1"])
    bad_out = tmp_path / "no_such_dir" / "o.jsonl"
    code, _, err = await cli("fetch", "--input", ids, "--output", str(bad_out))
    assert (code, err) == (
        2,
        f"dialnexa-async: error: cannot write output {bad_out}: No such file or directory\n",
    )
    code, _, err = await cli("fetch", "--input", ids, "--output", str(tmp_path))
    assert code == 2
    assert err == f"dialnexa-async: error: cannot write output {tmp_path}: Is a directory\n"
    code, _, err = await cli("fetch", "--input", ids, "--output", ids)
    assert (code, err) == (2, "dialnexa-async: error: --input and --output name the same file\n")
    code, _, err = await cli("fetch", "--input", ids, "--retry-errors")
    assert (code, err) == (2, "dialnexa-async: error: --retry-errors needs --errors FILE\n")
    assert sim.stats.requests == 0


async def test_output_that_is_not_ours_is_left_alone(
    sim: Simulator, cli: Cli, tmp_path: Path
) -> None:
    """A complete line that is not a lead record, or another CSV header: exit 2, file intact."""
    ids = write_ids(tmp_path / "ids.txt", ["lead_1"])
    out = tmp_path / "o.jsonl"
    out.write_text('{"id": "lead_0"}\nnot json\n', encoding="utf-8")
    code, _, err = await cli("fetch", "--input", ids, "--output", str(out))
    assert code == 2
    assert f"output {out} line 2 is not JSON; refusing to append to it" in err
    assert out.read_text(encoding="utf-8") == '{"id": "lead_0"}\nnot json\n'

    csv_out = tmp_path / "o.csv"
    csv_out.write_text("id,phone\nlead_0,+91\n", encoding="utf-8")
    code, _, err = await cli("fetch", "--input", ids, "--output", str(csv_out))
    assert code == 2
    assert "is not a CSV export with the columns id,campaign_id," in err
    assert csv_out.read_text(encoding="utf-8") == "id,phone\nlead_0,+91\n"
    assert sim.stats.requests == 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_torn_last_line_is_cut_and_its_id_fetched_again(
    sim: Simulator, cli: Cli, tmp_path: Path, fmt: str
) -> None:
    """An incomplete last record is removed, the rest kept, and only missing ids are fetched."""
    ids = write_ids(tmp_path / "ids.txt", ["lead_1", "lead_2", "lead_3"])
    out = tmp_path / f"o.{fmt}"
    await cli("fetch", "--input", ids, "--output", str(out))
    whole = out.read_bytes()
    lines = whole.splitlines(keepends=True)
    # Keep the first record whole and cut the second one in the middle (inside a quoted
    # JSON cell for CSV, so the tail spans an open quote).
    keep = 2 if fmt == "csv" else 1
    torn = lines[keep][: len(lines[keep]) - 20]
    out.write_bytes(b"".join(lines[:keep]) + torn)
    kept_line = lines[keep - 1]
    kept = json.loads(kept_line)["id"] if fmt == "jsonl" else kept_line.split(b",")[0].decode()

    sim.stats.reset()
    code, _, err = await cli("fetch", "--input", ids, "--output", str(out))
    assert code == 0
    assert f"ended with an incomplete line ({len(torn)} bytes)" in err
    # The file is exactly the three records, whole (plus the CSV header).
    lines_now = out.read_text(encoding="utf-8").splitlines(keepends=True)
    want = [expected(i) for i in ("lead_1", "lead_2", "lead_3")]
    if fmt == "csv":
        assert lines_now.pop(0) == CsvFormat().header()
        assert sorted(lines_now) == sorted(CsvFormat().line(lead) for lead in want)
    else:
        assert sorted((json.loads(line) for line in lines_now), key=lambda d: d["id"]) == want
    assert kept not in sim.stats.attempts_by_id
    assert sum(sim.stats.attempts_by_id.values()) == 2


async def test_second_run_on_the_same_output_is_refused_while_one_runs(
    sim: Simulator, cli: Cli, tmp_path: Path
) -> None:
    """Two runs appending to one output would duplicate ids, so the second is refused."""
    from dialnexa_async.cli._output import RecordFile

    ids = write_ids(tmp_path / "ids.txt", ["lead_1"])
    out = tmp_path / "o.jsonl"
    held = RecordFile(str(out), "output")
    try:
        code, _, err = await cli("fetch", "--input", ids, "--output", str(out))
    finally:
        held.close()
    assert code == 2
    assert f"output {out} is in use by another dialnexa-async run" in err
    assert sim.stats.requests == 0


# --- demo --------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_env")
async def test_demo_completes_with_one_result_per_id(cli: Cli, tmp_path: Path) -> None:
    """The demo fetches through faults and 429s, every id gets one result, and exit is 0."""
    out = tmp_path / "demo.csv"
    code, stdout, err = await cli("demo", "--count", "500", "--output", str(out))
    assert code == 0
    assert stdout == ""
    assert err.splitlines()[-1] == "check: 500 ids, 500 results, 0 missing, 0 duplicated"
    ok = int(err.split("\n  ok")[1].split()[0])
    missing = int(err.split("NotFoundError")[1].split()[0])
    assert ok + missing == 500
    assert 0 < missing < 50
    with out.open(newline="", encoding="utf-8") as file:
        assert len(list(csv.DictReader(file))) == ok


def test_demo_check_fails_on_a_missing_or_repeated_result() -> None:
    """The closing check counts an id without a result and an id with two as failures."""
    from collections import Counter

    from dialnexa_async.cli._demo import check_line

    assert check_line(["a", "b"], Counter({"a": 1, "b": 1})) == (
        "check: 2 ids, 2 results, 0 missing, 0 duplicated",
        True,
    )
    assert check_line(["a", "b"], Counter({"a": 2})) == (
        "check: 2 ids, 2 results, 1 missing, 1 duplicated",
        False,
    )


# --- pieces ------------------------------------------------------------------------------


def test_parse_ids_strips_skips_and_deduplicates() -> None:
    """Whitespace is stripped, blanks and comments skipped, repeats counted and dropped."""
    parsed = parse_ids(FETCH_INPUT, "ids.txt")
    assert parsed.ids == DISTINCT
    assert parsed.duplicates == 1


def test_scanners_find_the_torn_tail() -> None:
    """Only bytes after the last complete record count as torn, for JSONL and CSV alike."""
    jsonl = b'{"id":"a"}\n{"id":"b"}\n{"id":"c'
    found = scan_jsonl(io.BytesIO(jsonl), "o", "output")
    assert (found.ids, found.valid_end, found.torn_bytes) == (["a", "b"], 22, 8)

    header = ",".join(CSV_COLUMNS) + "\n"
    row = 'a,cmp,+91,pending,2024-01-01T00:00:00.000Z,,,"{""k"":""v\n'
    data = (header + "b,cmp,+91,pending,2024,,,{},{}\n" + row).encode()
    found = scan_csv(io.BytesIO(data), "o", "output")
    assert found.ids == ["b"]
    assert found.has_header
    assert found.torn_bytes == len(row.encode())


def snapshot() -> dnx.BulkProgress:
    """A progress snapshot 40 ids into a 100-id run."""
    return dnx.BulkProgress(
        total=100,
        done=40,
        ok=38,
        failed=2,
        retries=5,
        rate_limited=3,
        send_rate=20.0,
        concurrency=16,
        cooldown_seconds=1.5,
        elapsed=2.0,
    )


def test_bar_shows_done_over_total_and_the_counters() -> None:
    """The bar counts earlier runs' ids and shows ok, failed, retries, 429s and concurrency."""
    stream = io.StringIO()
    bar = BarReporter(stream, initial=10, grand_total=110)
    bar(snapshot())
    bar.message("lead_x: NotFoundError 404: Lead not found")
    bar.close()
    text = stream.getvalue()
    assert "50/110" in text
    assert "ok=38 failed=2 retries=5 429s=3 conc=16" in text
    assert "lead_x: NotFoundError 404: Lead not found\n" in text


def test_line_reporter_prints_at_most_every_interval() -> None:
    """Plain progress prints one full line of counters per interval, not per snapshot."""
    now = [0.0]
    stream = io.StringIO()
    reporter = LineReporter(stream, interval=2.0, initial=10, grand_total=110, clock=lambda: now[0])
    for t in (0.5, 1.9, 2.0, 2.1, 3.9, 4.0):
        now[0] = t
        reporter(snapshot())
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == (
        "progress: 50/110 (45%) done, 38 ok, 2 failed, 20 ids/s, eta 3s, 5 retries, 3 429s, "
        "concurrency 16, cooldown 1.5s, elapsed 2.0s"
    )


class ListSink:
    """A sink keeping what was written."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)

    def close(self) -> None:
        pass


def test_result_writer_writes_each_id_once_and_caps_printed_failures() -> None:
    """A repeated result is not written twice; without an errors file only 20 failures print."""
    lead = dnx.Lead(
        id="lead_1",
        campaign_id="cmp_1",
        phone_number="+919876543210",
        status="pending",
        created_at=datetime(2024, 5, 1, 9, 5, tzinfo=timezone.utc),
    )
    leads, errors = ListSink(), ListSink()
    said: list[str] = []
    counted: list[dnx.LeadResult] = []
    writer = ResultWriter(leads, CsvFormat(), errors, said.append, counted.append)
    found = dnx.LeadResult("lead_1", lead=lead)
    failed = dnx.LeadResult(
        "lead_2", error=dnx.NotFoundError("Lead not found", status_code=404, request_id="r1")
    )
    for result in (found, failed, found, failed):
        writer(result)
    assert leads.lines == ["lead_1,cmp_1,+919876543210,pending,2024-05-01T09:05:00.000Z,,,{},{}\n"]
    assert [json.loads(line) for line in errors.lines] == [
        {
            "id": "lead_2",
            "error": "NotFoundError",
            "status": 404,
            "message": "Lead not found",
            "request_id": "r1",
        }
    ]
    assert counted == [found, failed]

    printer = ResultWriter(leads, CsvFormat(), None, said.append, counted.append)
    for i in range(30):
        printer(dnx.LeadResult(f"x{i}", error=dnx.APITimeoutError("attempt timed out")))
    assert said[0] == "x0: APITimeoutError: attempt timed out"
    assert len(said) == 21
    assert said[-1] == "more failures are only counted; pass --errors FILE to record them all"
