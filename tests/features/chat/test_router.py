"""The offline provider through LiteLLM, and the router's choices. No server, no network."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from inner_universe.features.chat import Deployment, Needs, ProviderRouter
from inner_universe.spacetime.types import Identity, Timestamp


@pytest.fixture(scope="module")
def router() -> ProviderRouter:
    return ProviderRouter(
        [
            Deployment("large", "offline/large", {"pace": 0}),
            Deployment("echo", "offline/echo", {"pace": 0}),
            Deployment("flaky", "offline/echo", {"pace": 0, "fail_after": 2}),
        ]
    )


def test_importing_the_feature_does_not_import_litellm() -> None:
    code = (
        "import sys, inner_universe.features.chat, inner_universe.spacetime;"
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_capabilities_come_from_litellms_model_info(router: ProviderRouter) -> None:
    large, echo = router.capabilities["large"], router.capabilities["echo"]
    assert (large.max_input_tokens, large.tools, large.vision) == (128000, True, True)
    assert (echo.max_input_tokens, echo.tools, echo.vision) == (8192, False, False)
    assert large.output_cost_per_token > echo.output_cost_per_token


def test_candidates_are_matched_on_capabilities_and_ordered_by_cost(
    router: ProviderRouter,
) -> None:
    chosen, left_out = router.candidates(Needs(tokens_in=100))
    assert [d.name for d in chosen] == ["echo", "flaky", "large"]  # cheapest first
    assert left_out == {}

    chosen, left_out = router.candidates(Needs(tokens_in=100, vision=True))
    assert [d.name for d in chosen] == ["large"]
    assert left_out == {"echo": "no vision", "flaky": "no vision"}

    chosen, left_out = router.candidates(Needs(tokens_in=20_000))
    assert [d.name for d in chosen] == ["large"]
    assert left_out["echo"] == "context window 8192 < 20000 prompt tokens"

    chosen, left_out = router.candidates(Needs(tokens_in=10), {"echo": "it broke"})
    assert [d.name for d in chosen] == ["flaky", "large"]
    assert left_out == {"echo": "cooling down after: it broke"}


async def test_the_offline_provider_streams_a_script_and_continues_a_prefix(
    router: ProviderRouter,
) -> None:
    echo = router.deployments[1]
    prompt = [{"role": "user", "content": "hi"}]
    pieces = [p async for p in router.stream(echo, prompt, script="one two three four")]
    assert "".join(p.text for p in pieces) == "one two three four"
    assert pieces[-1].completion_tokens == 4 and pieces[-1].prompt_tokens

    resumed = [*prompt, {"role": "assistant", "content": "one two"}]
    rest = [p.text async for p in router.stream(echo, resumed, script="one two three four")]
    assert "".join(rest) == " three four"

    echoed = [p.text async for p in router.stream(echo, prompt)]
    assert "".join(echoed) == "You said: hi"


async def test_the_offline_provider_fails_where_told_with_a_provider_error(
    router: ProviderRouter,
) -> None:
    flaky = router.deployments[2]
    seen: list[str] = []
    with pytest.raises(Exception, match="dropped the stream after 2 words"):
        async for piece in router.stream(flaky, [{"role": "user", "content": "a b c d"}]):
            seen.append(piece.text)
    assert "".join(seen) == "You said: "


def test_costs_use_the_price_map_in_nano_dollars(router: ProviderRouter) -> None:
    echo = router.deployments[1]
    # offline/echo: $0.5 per million input tokens, $1.5 per million output tokens.
    assert router.cost_nano_usd(echo, 1000, 1000) == 500_000 + 1_500_000
    assert router.estimate_nano_usd(echo, 0) == 256 * 1500


def test_a_model_litellm_cannot_route_is_a_typed_input_error() -> None:
    from inner_universe.errors import InnerUniverseError
    from inner_universe.features.chat.errors import ChatInputError

    with pytest.raises(ChatInputError, match="cannot route") as caught:
        ProviderRouter([Deployment("mystery", "no-such-provider-model-xyz")])
    assert isinstance(caught.value, InnerUniverseError)


def test_cooling_combines_the_reports_of_trusted_identities_only() -> None:
    me, friend, stranger = Identity(1), Identity(2), Identity(3)
    router = ProviderRouter([Deployment("a", "offline/echo")], trust=[friend])
    now = 1_000.0

    def report(owner: Identity, name: str, seconds_left: float, error: str) -> SimpleNamespace:
        until = Timestamp(round((now + seconds_left) * 1e6))
        return SimpleNamespace(owner=owner, name=name, cooldown_until=until, last_error=error)

    rows = [
        report(friend, "a", 5, "overloaded"),
        report(me, "a", 5, "timeout"),
        report(stranger, "b", 3600, "lies"),  # not trusted: ignored
        report(me, "c", -1, "over"),  # its cooldown has passed
    ]
    assert router.trusted(me) == {me, friend}
    assert router.cooling(rows, me, now) == {
        "a": f"timeout; overloaded (reported by {friend.to_hex()[:8]})"  # our own reason first
    }
    assert ProviderRouter([Deployment("a", "offline/echo")]).cooling(rows, stranger, now) == {
        "b": "lies"
    }
