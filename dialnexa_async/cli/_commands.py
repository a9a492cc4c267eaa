"""The ``get``, ``fetch`` and ``simulate`` commands; each returns the process exit status."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from typing import TextIO

from dialnexa_async.testing import Simulator, config_from_args, serve

from ._connect import make_client, resolve_api_key
from ._engine import run_bulk, run_until_signal
from ._exit import EXIT_FAILED, EXIT_OK, UsageError, exit_status_for_signal
from ._ids import ids_from_args, read_ids
from ._output import (
    JsonlFormat,
    LeadFormat,
    RecordFile,
    RecordSink,
    ResultWriter,
    StreamSink,
    format_for,
    short_error,
)
from ._progress import make_reporter
from ._resume import Existing, drop_ids, scan_csv, scan_jsonl
from ._summary import Skipped, Tally, render_summary

__all__ = ["fetch_command", "get_command", "simulate_command"]


def _ascii_only(stream: TextIO) -> bool:
    """Whether ``stream`` cannot encode every character, so JSON must escape them."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return not encoding.startswith("utf")


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def get_command(ns: argparse.Namespace) -> int:
    """``get ID [ID ...]``: print each lead as JSON, failures on stderr.

    Args:
        ns: parsed flags.
    """
    ids = ids_from_args(ns.ids)
    api_key = resolve_api_key(ns.api_key_file)
    async with make_client(ns, api_key) as client:
        results = await client.get_leads(ids)
    out = sys.stdout
    pretty = out.isatty()
    ascii_only = _ascii_only(out)
    failed = 0
    for result in results:
        if result.lead is not None:
            body = result.lead.to_dict()
            if pretty:
                out.write(json.dumps(body, indent=2, ensure_ascii=ascii_only) + "\n")
            else:
                out.write(JsonlFormat(ascii_only=ascii_only).line(body))
        elif result.error is not None:
            failed += 1
            out.flush()
            _err(short_error(result.lead_id, result.error))
    out.flush()
    return EXIT_FAILED if failed else EXIT_OK


def _same_file(a: str | None, b: str | None) -> bool:
    if a is None or b is None or a == "-" or b == "-":
        return False
    return os.path.realpath(a) == os.path.realpath(b)


def _scan(records: RecordFile, lead_format: LeadFormat | None) -> Existing:
    """Scan a file an earlier run wrote and cut off its torn tail, saying so."""
    try:
        with open(records.path, "rb") as file:
            if lead_format is not None and lead_format.name == "csv":
                existing = scan_csv(file, records.path, records.what)
            else:
                existing = scan_jsonl(file, records.path, records.what)
    except OSError as exc:
        raise UsageError(f"cannot read {records.what} {records.path}: {exc.strerror}") from None
    if existing.torn_bytes:
        records.truncate(existing.valid_end)
        _err(
            f"note: {records.what} {records.path} ended with an incomplete line "
            f"({existing.torn_bytes} bytes) from an interrupted run; removed it"
        )
    return existing


def _open_output(
    path: str | None, lead_format: LeadFormat, stack: contextlib.ExitStack
) -> tuple[RecordSink, set[str]]:
    """The lead sink, and the ids an earlier run already wrote to it."""
    if path is None or path == "-":
        sink: RecordSink = StreamSink(sys.stdout)
        done: set[str] = set()
        has_header = False
    else:
        records = RecordFile(path, "output")
        stack.callback(records.close)
        existing = _scan(records, lead_format)
        sink, done, has_header = records, set(existing.ids), existing.has_header
    header = lead_format.header()
    if header is not None and not has_header:
        sink.write(header)
    return sink, done


def _open_errors(
    path: str | None, retry: bool, wanted: set[str], stack: contextlib.ExitStack
) -> tuple[RecordFile | None, set[str], frozenset[str]]:
    """The errors file, the failed ids to skip, and those of them a retry would fail again.

    ``retry`` first removes the failed ids of ``wanted`` from the file.
    """
    if path is None:
        return None, set(), frozenset()
    errors = RecordFile(path, "errors file")
    stack.callback(errors.close)
    existing = _scan(errors, None)
    failed = set(existing.ids)
    if retry:
        again = frozenset(failed & wanted)
        if again:
            try:
                errors = drop_ids(errors, existing.valid_end, again)
            except OSError as exc:
                raise UsageError(f"cannot rewrite errors file {path}: {exc.strerror}") from None
            stack.callback(errors.close)
            _err(f"retrying {len(again)} ids that failed before")
        failed -= again
    return errors, failed, existing.lasting & failed


async def fetch_command(ns: argparse.Namespace) -> int:
    """``fetch``: every id of the input into the output, resumably.

    Every check that can refuse the run (flags, key, input, files) happens before the first
    request, and before any file is created.

    Args:
        ns: parsed flags.
    """
    if ns.retry_errors and ns.errors is None:
        raise UsageError("--retry-errors needs --errors FILE")
    for a, b, what in (
        (ns.input, ns.output, "--input and --output"),
        (ns.input, ns.errors, "--input and --errors"),
        (ns.output, ns.errors, "--output and --errors"),
    ):
        if _same_file(a, b):
            raise UsageError(f"{what} name the same file")
    inputs = read_ids(ns.input)
    api_key = resolve_api_key(ns.api_key_file)
    lead_format = format_for(ns.format, ns.output)
    if isinstance(lead_format, JsonlFormat) and ns.output in (None, "-"):
        lead_format = JsonlFormat(ascii_only=_ascii_only(sys.stdout))
    client = make_client(ns, api_key, concurrency=ns.concurrency)
    wanted = set(inputs.ids)

    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(client)
        files = stack.enter_context(contextlib.ExitStack())
        leads, done_ok = _open_output(ns.output, lead_format, files)
        errors, done_failed, lasting = _open_errors(ns.errors, ns.retry_errors, wanted, files)
        pending = [i for i in inputs.ids if i not in done_ok and i not in done_failed]
        skipped_ok = len(wanted & done_ok)
        skipped = Skipped(
            ok=skipped_ok,
            failed=len(inputs.ids) - len(pending) - skipped_ok,
            lasting=len(wanted & (lasting - done_ok)),
        )
        if inputs.duplicates:
            _err(f"note: {inputs.duplicates} repeated ids in the input are fetched once")
        if not pending:
            _err(
                f"nothing to fetch: all {len(inputs.ids)} ids are already in the output "
                f"({skipped.ok}) or the errors file ({skipped.failed})"
            )
            return EXIT_FAILED if skipped.failed else EXIT_OK

        reporter = make_reporter(
            sys.stderr,
            enabled=not ns.no_progress,
            initial=skipped.ok + skipped.failed,
            grand_total=len(inputs.ids),
        )
        tally = Tally()
        writer = ResultWriter(leads, lead_format, errors, reporter.message, tally.add)
        try:
            outcome = await run_bulk(
                client, pending, on_result=writer, reporter=reporter, concurrency=ns.concurrency
            )
        finally:
            reporter.close()
    for line in render_summary(
        tally,
        client.stats,
        elapsed=outcome.elapsed,
        asked=len(pending),
        skipped=skipped,
        stopped_by=outcome.stopped_by,
        refused=outcome.refused,
    ):
        _err(line)
    if outcome.stopped_by is not None:
        return exit_status_for_signal(outcome.stopped_by)
    failed = sum(tally.failed.values()) + skipped.failed
    # Suggested only when another try could change something: a rerun gets a 404 again.
    mendable = failed - tally.lasting - skipped.lasting
    if mendable and outcome.refused is None and errors is not None:
        if mendable == failed:
            _err(f"{failed} ids failed; pass --retry-errors to fetch them again")
        else:
            _err(
                f"{failed} ids failed, {mendable} of them in a way another try may mend; "
                "pass --retry-errors to fetch the failed ids again"
            )
    return EXIT_FAILED if failed or outcome.refused is not None else EXIT_OK


def _announce(sim: Simulator) -> None:
    """Say where the simulator listens, and how to point the CLI at it."""
    print(f"DialNexa simulator listening on {sim.base_url}", flush=True)
    key = sim.config.api_key
    # Only the well-known default is echoed: a key the user chose is theirs to keep quiet.
    shown = "any-token" if key is None else key if key == "sk_test" else "<the --api-key value>"
    _err(
        f"try: DIALNEXA_API_KEY={shown} dialnexa-async get lead_abc123 "
        f"--base-url {sim.base_url}    (Ctrl-C stops the simulator)"
    )


async def simulate_command(ns: argparse.Namespace) -> int:
    """``simulate``: serve the local simulator until SIGINT or SIGTERM.

    Args:
        ns: parsed flags of ``dialnexa_async.testing.build_parser``.
    """
    config = config_from_args(ns)
    task = asyncio.ensure_future(
        serve(config, host=ns.host, port=ns.port, stop=asyncio.Event(), on_ready=_announce)
    )
    try:
        await run_until_signal(task)
    except OSError as exc:
        _err(f"dialnexa-async simulate: cannot listen on {ns.host}:{ns.port}: {exc.strerror}")
        return EXIT_FAILED
    return EXIT_OK
