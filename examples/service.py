"""An aiohttp.web service that looks up DialNexa leads with one client shared by all requests.

Run it with DIALNEXA_API_KEY set, then GET http://127.0.0.1:8080/leads/lead_abc123.
Ctrl-C or SIGTERM stops it: requests in flight finish, then the client closes.
"""

import asyncio
import sys
from collections.abc import AsyncIterator

from aiohttp import web

import dialnexa_async as dnx

DEADLINE = 10.0
"""Seconds one lookup may take in all, retries and waits included."""

CLIENT = web.AppKey("dialnexa", dnx.AsyncDialNexa)


async def dialnexa_client(app: web.Application) -> AsyncIterator[None]:
    """Startup and cleanup: one client for the process, made inside the server's event loop."""
    async with dnx.AsyncDialNexa() as client:  # key from DIALNEXA_API_KEY
        app[CLIENT] = client
        yield  # the service runs here; leaving closes the client and its connections


async def get_lead(request: web.Request) -> web.Response:
    """GET /leads/{lead_id}: the lead as JSON, or the reason there is none."""
    client = request.app[CLIENT]
    try:
        lead = await asyncio.wait_for(client.get_lead(request.match_info["lead_id"]), DEADLINE)
    except dnx.InvalidLeadIdError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    except dnx.NotFoundError as exc:
        raise web.HTTPNotFound(text="no such lead") from exc
    except dnx.DialNexaError as exc:  # the API failed us, after the SDK's retries
        raise web.HTTPBadGateway(text=type(exc).__name__) from exc
    except asyncio.TimeoutError as exc:  # DEADLINE passed: the lookup was cancelled
        raise web.HTTPGatewayTimeout(text="DialNexa did not answer in time") from exc
    return web.json_response(lead.to_dict())


def make_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(dialnexa_client)
    app.router.add_get("/leads/{lead_id}", get_lead)
    return app


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    # run_app handles SIGINT and SIGTERM: it stops taking requests, then runs the cleanup.
    web.run_app(make_app(), host="127.0.0.1", port=port)
