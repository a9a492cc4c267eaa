"""The I/O-free core: building requests, reading headers, interpreting answers, computing delays.

Nothing in this package imports aiohttp or touches the event loop, so every decision in it is
tested with plain function calls.
"""
