"""The offline provider through LiteLLM, and the router's choices. No server, no network."""

from __future__ import annotations

import subprocess
import sys

import pytest

from inner_universe.features.chat import Deployment, Needs, ProviderRouter


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
