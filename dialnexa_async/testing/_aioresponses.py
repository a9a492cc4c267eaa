"""``aioresponses`` that works with the aiohttp this SDK installs.

aioresponses 0.7.9 builds its fake responses without the ``stream_writer`` argument that
aiohttp 3.14's ``ClientResponse`` requires, so every mocked request fails with a
``TypeError`` (pnuckowski/aioresponses#289, fixed upstream but not yet released). The class
here is the original with one change: while it is started, the responses it builds get a
finished writer, which is what that argument means for a response whose request was already
"sent". With an aiohttp that takes no such argument the change does nothing.

Importing this module needs aioresponses installed; ``dialnexa_async.testing`` imports it
only when ``aioresponses`` is asked for.
"""

from __future__ import annotations

import inspect
import types
from typing import Any
from unittest import mock

import aioresponses.core as _core
from aiohttp import ClientResponse
from aioresponses import aioresponses as _aioresponses

_NEEDS_STREAM_WRITER = "stream_writer" in inspect.signature(ClientResponse.__init__).parameters


class CompatClientResponse(ClientResponse):
    """A ``ClientResponse`` that accepts aioresponses' arguments on any supported aiohttp."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _NEEDS_STREAM_WRITER and "stream_writer" not in kwargs:
            # The request is already "sent" when aioresponses builds its answer: aiohttp
            # then reads only how many bytes the writer wrote.
            kwargs["stream_writer"] = types.SimpleNamespace(output_size=0)
        super().__init__(*args, **kwargs)


class aioresponses(_aioresponses):  # a drop-in keeps the original's name
    """``aioresponses.aioresponses`` whose fake responses the installed aiohttp accepts.

    Use it exactly like the original (context manager, decorator, ``start()``/``stop()``);
    the fix applies only while it is started, so other tests are left as they were.

    Args:
        **kwargs: The original's arguments (``passthrough``, ``param``, ...).
    """

    def start(self) -> None:
        """Start intercepting aiohttp requests, building responses the compatible way."""
        patcher = mock.patch.object(_core, "ClientResponse", CompatClientResponse)
        patcher.start()
        try:
            super().start()
        except BaseException:
            patcher.stop()
            raise
        self._compat_patcher = patcher

    def stop(self) -> None:
        """Stop intercepting, and stop building responses the compatible way."""
        try:
            super().stop()
        finally:
            patcher = self.__dict__.pop("_compat_patcher", None)
            if patcher is not None:
                patcher.stop()
