"""Building the client from the common flags; the API key comes from the environment or a file.

There is deliberately no ``--api-key`` flag: a key typed on the command line lands in shell
history and in every ``ps`` listing.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import dialnexa_async as dnx

from ._exit import UsageError

__all__ = ["API_KEY_ENV", "make_client", "resolve_api_key"]

API_KEY_ENV = "DIALNEXA_API_KEY"


def resolve_api_key(key_file: str | None) -> str:
    """The API key: the first line of ``key_file`` when given, else ``$DIALNEXA_API_KEY``.

    Args:
        key_file: ``--api-key-file``, when given; it wins over the environment because it
            was asked for explicitly.

    Raises:
        UsageError: the file cannot be read or is empty, or no key is set at all.
    """
    if key_file is not None:
        try:
            with open(key_file, encoding="utf-8") as file:
                key = file.readline().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"cannot read --api-key-file {key_file}: {reason}") from None
        if not key:
            raise UsageError(f"--api-key-file {key_file} is empty")
        return key
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise UsageError(f"no API key: set {API_KEY_ENV} or pass --api-key-file PATH")
    return key


def make_client(
    ns: argparse.Namespace, api_key: str, *, concurrency: int | None = None
) -> dnx.AsyncDialNexa:
    """A client configured by the common flags; unset flags keep the SDK's defaults.

    Args:
        ns: parsed flags: ``base_url``, ``max_retries``, ``timeout`` and, when the command
            has them, ``rate_limit`` and ``rate_store``.
        api_key: the key to send.
        concurrency: the most requests in flight; raises the client's own cap to match.

    Raises:
        UsageError: the SDK refused a setting (e.g. a base URL that is not http(s)).
    """
    options: dict[str, Any] = {"api_key": api_key}
    if ns.base_url is not None:
        options["base_url"] = ns.base_url
    if ns.max_retries is not None:
        options["max_retries"] = ns.max_retries
    if ns.timeout is not None:
        options["timeout"] = ns.timeout
    if getattr(ns, "rate_limit", None) is not None:
        options["rate_limit"] = ns.rate_limit
    if concurrency is not None:
        options["max_concurrency"] = concurrency
    try:
        if getattr(ns, "rate_store", None) is not None:
            options["rate_store"] = dnx.RedisRateStore(ns.rate_store)
        return dnx.AsyncDialNexa(**options)
    except (ValueError, ImportError, dnx.DialNexaError) as exc:
        # Neither message holds the key: the SDK's errors never carry request headers.
        raise UsageError(str(exc)) from None
