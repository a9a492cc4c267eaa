"""The command-line grammar: ``dialnexa-async {get,fetch,simulate,demo} ...``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import dialnexa_async as dnx
from dialnexa_async.testing import build_parser as build_simulator_parser

__all__ = ["DEFAULT_DEMO_COUNT", "PROG", "parse_args"]

PROG = "dialnexa-async"

DEFAULT_DEMO_COUNT = 10_000
"""Leads the demo fetches unless ``--count`` says otherwise."""


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type for whole numbers of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value

    return parse


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    # "not value > 0" also refuses nan; inf stays refused by the SDK's own checks downstream.
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _redis_url(text: str) -> str:
    # The URL is not echoed back: it may hold a password.
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise argparse.ArgumentTypeError("expected a redis://, rediss:// or unix:// URL")
    return text


def _client_flags() -> argparse.ArgumentParser:
    """Flags every command that talks to the API shares."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--base-url",
        metavar="URL",
        help="API root (default: $DIALNEXA_BASE_URL, else https://api.dialnexa.com/v1)",
    )
    group.add_argument(
        "--api-key-file",
        metavar="PATH",
        help="read the API key from the first line of PATH (default: $DIALNEXA_API_KEY)",
    )
    # Accepted only to be refused by name: argparse would otherwise echo the unknown flag's
    # value (the key) in its error, or take "--api-key" as an abbreviation of --api-key-file.
    group.add_argument("--api-key", dest="refused_api_key", help=argparse.SUPPRESS)
    group.add_argument(
        "--max-retries",
        type=_non_negative_int,
        metavar="N",
        help="retries after the first attempt of each request; 0 turns retrying off",
    )
    group.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS", help="time limit of one attempt"
    )
    return parser


def _output_flags(parser: argparse.ArgumentParser, *, output_help: str) -> None:
    parser.add_argument("--output", metavar="FILE", help=output_help)
    parser.add_argument(
        "--format",
        choices=("jsonl", "csv"),
        help="lead format: JSON Lines, or CSV with metadata and notes as JSON cells "
        "(default: csv for a .csv output, else jsonl)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="show no progress bar or progress lines"
    )


def _build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The program's parser, and the parser of each subcommand by name (but ``simulate``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fetch DialNexa campaign leads, in bulk or one by one, or try the SDK "
        "against a local simulator.",
        epilog="Start with: dialnexa-async demo",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {dnx.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    client = _client_flags()

    get = commands.add_parser(
        "get",
        allow_abbrev=False,
        parents=[client],
        help="print leads as JSON",
        description="Print each lead as JSON (indented on a terminal, one line each when "
        "piped). Exit status 0 when all were found, 1 when any failed.",
    )
    get.add_argument("ids", nargs="+", metavar="ID", help="campaign-lead id")

    fetch = commands.add_parser(
        "fetch",
        allow_abbrev=False,
        parents=[client],
        help="fetch many leads into a file, resumably",
        description="Fetch every id of an input into JSON Lines or CSV. Results are written "
        "as they arrive; after Ctrl-C or a crash, the same command fetches only the ids not "
        "yet in the output or errors file. Ids recorded as failed are skipped on a rerun "
        "unless --retry-errors is given. Exit status 0 when every id is in the output, "
        "1 when any failed, 2 for bad flags or input, 130/143 when stopped by SIGINT/SIGTERM.",
    )
    fetch.add_argument(
        "--input",
        required=True,
        metavar="FILE",
        help="ids, one per line ('-' for stdin); blank lines and #-comments are skipped",
    )
    _output_flags(
        fetch,
        output_help="where leads go (default: stdout, which cannot be resumed)",
    )
    fetch.add_argument(
        "--errors",
        metavar="FILE",
        help="JSON Lines of failed ids (id, error, status, message, request_id); without "
        "it failures are only printed, and a rerun tries those ids again",
    )
    fetch.add_argument(
        "--retry-errors",
        action="store_true",
        help="fetch again the ids the errors file holds, removing them from it first",
    )
    fetch.add_argument(
        "--concurrency", type=_positive_int, metavar="N", help="most requests in flight"
    )
    fetch.add_argument(
        "--rate-limit",
        type=_positive_float,
        metavar="PER_SECOND",
        help="never send more requests per second than this (default: paced by the server)",
    )
    fetch.add_argument(
        "--rate-store",
        type=_redis_url,
        metavar="URL",
        help="share rate control through Redis (redis://host:port/db) with every other "
        "process using the same key, e.g. several fetch processes splitting one input; "
        "needs the redis extra",
    )

    # Only a name here: its flags are parsed by the simulator's own parser (see parse_args).
    commands.add_parser("simulate", add_help=False, help="run the local API simulator")

    demo = commands.add_parser(
        "demo",
        allow_abbrev=False,
        help="watch a bulk fetch against a local simulator",
        description="Start a simulator with latency, a rate limit, faults and unknown ids, "
        "fetch many leads from it, and check that every id got exactly one result. Needs "
        "no API key and no network.",
    )
    demo.add_argument(
        "--count",
        type=_positive_int,
        default=DEFAULT_DEMO_COUNT,
        metavar="N",
        help=f"leads to fetch (default {DEFAULT_DEMO_COUNT})",
    )
    demo.add_argument("--seed", type=int, default=0, help="seed of the simulated faults")
    _output_flags(demo, output_help="also write the leads to FILE, replacing it")
    return parser, {"get": get, "fetch": fetch, "demo": demo}


def _simulate_parser() -> argparse.ArgumentParser:
    """The ``simulate`` command's parser: the simulator's own, under this program's name.

    Not a copy through ``parents=``: argparse (3.10 to 3.13.0 at least) copies a mutually
    exclusive group out of its argument group, so ``--api-key``/``--any-key`` and the two
    Retry-After flags showed under "options" instead of under their own headings.
    """
    parser = build_simulator_parser(prog=f"{PROG} simulate")
    parser.description = (
        "Serve a local simulator of the DialNexa API until Ctrl-C, with its rate limit, "
        "latency and faults set by flags. Point the SDK or this CLI at it with --base-url "
        "(or DIALNEXA_BASE_URL) and the simulator's key."
    )
    parser.allow_abbrev = False
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a command line; a flag error names the subcommand it belongs to.

    Like ``ArgumentParser.parse_args``, a bad command line prints a usage and an error and
    raises ``SystemExit(2)``; ``--help`` prints and raises ``SystemExit(0)``. An unknown flag
    after a subcommand prints that subcommand's usage, not the program's.

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.
    """
    parser, subcommands = _build_parsers()
    # Known flags only: left to itself, argparse reports a subcommand's unknown flag with the
    # program's usage, which does not show the flags the subcommand does take.
    ns, extra = parser.parse_known_args(argv)
    if ns.command == "simulate":
        return _simulate_parser().parse_args(extra, namespace=ns)
    if extra:
        subcommands[ns.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return ns
