"""Benchmarks of ``dialnexa_async`` against raw aiohttp, httpx and a quick hand-written SDK.

Run ``python -m benchmarks`` (see ``benchmarks/README.md``). Each contender runs in its own
subprocess against the simulator in another subprocess, so the numbers are end to end.
"""
