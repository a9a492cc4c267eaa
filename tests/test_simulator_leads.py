"""Preloaded leads: the simulator serves the fields a test chose for an id."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

import dialnexa_async as dnx
from dialnexa_async.testing import Reply, Simulator, SimulatorConfig, SimulatorOptions, lead_payload

CHOSEN = {
    "status": "completed",
    "name": "Priya Sharma",
    "metadata": {"customer_name": "Priya Sharma", "product": "home_loan"},
    "call_log_id": "log_abc123",
    "created_at": "2024-03-01T10:00:00.000Z",
}


@pytest.fixture
def dialnexa_simulator_options() -> SimulatorOptions:
    """Every test here runs on a simulator with one preloaded lead."""
    return {"leads": {"lead_chosen": CHOSEN}}


async def test_preloaded_fields_reach_the_client(dialnexa_client: dnx.AsyncDialNexa) -> None:
    """The chosen fields arrive as given; the rest of the lead is the generated one."""
    lead = await dialnexa_client.get_lead("lead_chosen")
    generated = lead_payload("lead_chosen")
    assert lead.status == dnx.LeadStatus.COMPLETED
    assert lead.name == "Priya Sharma"
    assert dict(lead.metadata) == CHOSEN["metadata"]
    assert lead.call_log_id == "log_abc123"
    assert lead.to_dict()["created_at"] == "2024-03-01T10:00:00.000Z"
    assert (lead.phone_number, lead.campaign_id) == (
        generated["phone_number"],
        generated["campaign_id"],
    )


async def test_add_lead_while_running_replaces_the_fields(
    dialnexa_simulator: Simulator, dialnexa_client: dnx.AsyncDialNexa
) -> None:
    """``add_lead`` works on a running simulator, and a second call replaces the first."""
    dialnexa_simulator.add_lead("lead_2", status="failed", notes={"reason": "no answer"})
    lead = await dialnexa_client.get_lead("lead_2")
    assert (lead.status, dict(lead.notes)) == ("failed", {"reason": "no answer"})
    dialnexa_simulator.add_lead("lead_2", status="removed")
    lead = await dialnexa_client.get_lead("lead_2")
    assert lead.status == "removed"
    assert dialnexa_simulator.lead_payload("lead_2")["status"] == "removed"
    assert (await dialnexa_client.get_lead("lead_chosen")).name == "Priya Sharma"


async def test_a_preloaded_lead_exists_whatever_else_says_it_does_not(
    dialnexa_simulator: Simulator, dialnexa_client: dnx.AsyncDialNexa
) -> None:
    """A preloaded ``missing_*`` id, or one outside ``known_ids``, is found; others are not."""
    dialnexa_simulator.config.known_ids = frozenset({"lead_known"})
    dialnexa_simulator.add_lead("missing_but_preloaded", status="pending")
    assert (await dialnexa_client.get_lead("missing_but_preloaded")).status == "pending"
    assert (await dialnexa_client.get_lead("lead_chosen")).name == "Priya Sharma"
    assert (await dialnexa_client.get_lead("lead_known")).id == "lead_known"
    with pytest.raises(dnx.NotFoundError):
        await dialnexa_client.get_lead("lead_other")


async def test_a_scripted_200_serves_the_preloaded_lead(
    dialnexa_simulator: Simulator, dialnexa_client: dnx.AsyncDialNexa
) -> None:
    """After two scripted 500s the retried call gets the preloaded fields."""
    dialnexa_simulator.script("lead_chosen", Reply(status=500, times=2))
    lead = await dialnexa_client.get_lead("lead_chosen")
    assert lead.name == "Priya Sharma"
    assert dialnexa_simulator.stats.attempts_by_id["lead_chosen"] == 3


async def test_the_key_is_still_checked_for_a_preloaded_lead(dialnexa_simulator: Simulator) -> None:
    """Preloading a lead does not open it to a wrong key."""
    async with dnx.AsyncDialNexa(api_key="wrong", base_url=dialnexa_simulator.base_url) as client:
        with pytest.raises(dnx.AuthenticationError):
            await client.get_lead("lead_chosen")


def test_preloaded_leads_are_copied_so_later_changes_do_not_leak() -> None:
    """The config keeps its own copy: changing the caller's dict later changes nothing."""
    fields: dict[str, object] = {"metadata": {"product": "car_loan"}}
    config = SimulatorConfig(leads={"lead_1": fields})
    fields["status"] = "failed"
    fields["metadata"] = {}
    assert config.leads == {"lead_1": {"metadata": {"product": "car_loan"}}}


@pytest.mark.parametrize(
    ("leads", "error", "match"),
    [
        ({"has space": {}}, ValueError, "does not match"),
        ({"": {}}, ValueError, "does not match"),
        ({"lead_1": ["status"]}, TypeError, "must be a mapping"),
        ({"lead_1": {"created_at": object()}}, TypeError, "not JSON"),
    ],
)
def test_a_lead_that_cannot_be_served_is_refused_up_front(
    leads: dict[str, object], error: type[Exception], match: str
) -> None:
    """Bad ids and fields fail when the simulator is built, not at the first request."""
    with pytest.raises(error, match=match):
        Simulator(leads=leads)  # type: ignore[arg-type]


def test_add_lead_checks_as_construction_does() -> None:
    """``add_lead`` refuses the same mistakes and leaves the leads as they were."""
    sim = Simulator(leads={"lead_1": {"status": "failed"}})
    with pytest.raises(ValueError, match="does not match"):
        sim.add_lead("has space", status="failed")
    with pytest.raises(TypeError, match="not JSON"):
        sim.add_lead("lead_2", created_at=datetime.now(timezone.utc))
    assert sim.config.leads == {"lead_1": {"status": "failed"}}
