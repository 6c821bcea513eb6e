"""Providers and routing: which deployment answers, in which order, through LiteLLM's Router.

A :class:`Deployment` names one provider (the name the ``provider`` table,
the ledger and the fallback order use) and the LiteLLM model behind it, with
its parameters (``api_base``, keys, or the offline provider's ``script`` and
``pace``). :class:`ProviderRouter` puts them in one ``litellm.Router``, the
only way the feature calls a model, and decides the order to try them for a
request:

- capability matching: a deployment whose model (per LiteLLM's model info)
  has too small a context window for the prompt, or lacks tools or vision
  that the request needs, is left out;
- health: a deployment in cooldown is left out. The ``provider`` table has one
  row per reporting identity and provider, written only by that identity's own
  calls; the router heeds the reports of the identities it trusts (the session's
  own, and those named in ``trust``): a provider is cooling if any of them put
  it in cooldown. The module refuses only the caller's own cooling providers,
  so a stranger's reports can never stop a call;
- cost: the rest are tried cheapest first (LiteLLM's offline price map;
  unknown prices count as zero), in declared order between equals.

The session falls back along that order, also after a stream has started;
the Router itself makes one attempt per call (no retries, no cooldowns of its
own: those live in the database, where every process sees them).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...spacetime.types import Identity
from .errors import ChatInputError
from .llm import litellm

__all__ = ["Capabilities", "Deployment", "Needs", "ProviderRouter", "StreamPiece"]


@dataclass(frozen=True)
class Deployment:
    """One provider: a name for the tables and a LiteLLM model with its parameters."""

    name: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Needs:
    """What a request needs from a model."""

    tokens_in: int = 0
    tools: bool = False
    vision: bool = False


@dataclass(frozen=True)
class Capabilities:
    """What LiteLLM's model info says about a model (unknown models: no limits, no extras)."""

    max_input_tokens: int | None
    tools: bool
    vision: bool
    input_cost_per_token: float
    output_cost_per_token: float

    def refuses(self, needs: Needs) -> str | None:
        """Why this model cannot serve ``needs``, or None."""
        if self.max_input_tokens is not None and needs.tokens_in > self.max_input_tokens:
            return f"context window {self.max_input_tokens} < {needs.tokens_in} prompt tokens"
        if needs.tools and not self.tools:
            return "no tool calling"
        if needs.vision and not self.vision:
            return "no vision"
        return None


@dataclass(frozen=True)
class StreamPiece:
    """One item of a model's stream: text, and the usage once the provider reports it."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ProviderRouter:
    """The deployments, their capabilities and prices, the identities whose provider
    health reports it trusts, and the LiteLLM Router that calls them."""

    def __init__(
        self,
        deployments: Sequence[Deployment],
        *,
        cost_aware: bool = True,
        expected_output_tokens: int = 256,
        trust: Iterable[Identity] = (),
    ) -> None:
        if not deployments:
            raise ChatInputError("a router needs at least one deployment")
        names = [d.name for d in deployments]
        if len(set(names)) != len(names):
            raise ChatInputError(f"deployment names must be unique: {names}")
        self.deployments = tuple(deployments)
        self.cost_aware = cost_aware
        self.expected_output_tokens = expected_output_tokens
        self.trust = frozenset(trust)
        """Identities whose cooldowns this router heeds, besides the session's own."""
        if not all(isinstance(identity, Identity) for identity in self.trust):
            raise ChatInputError(f"trust takes Identity values, got {set(self.trust)!r}")
        self._llm = litellm()
        try:
            self.router = self._llm.Router(
                model_list=[
                    {"model_name": d.name, "litellm_params": {"model": d.model, **d.params}}
                    for d in deployments
                ],
                num_retries=0,
                disable_cooldowns=True,
            )
        except self._llm.exceptions.BadRequestError as exc:  # a model with no known provider
            raise ChatInputError(f"LiteLLM cannot route these models: {exc}") from exc
        self.capabilities = {d.name: self._capabilities(d.model) for d in deployments}

    def _capabilities(self, model: str) -> Capabilities:
        try:
            info = self._llm.get_model_info(model)
        except Exception:  # litellm raises a bare Exception for models it does not know
            return Capabilities(None, False, False, 0.0, 0.0)
        return Capabilities(
            max_input_tokens=info.get("max_input_tokens"),
            tools=bool(info.get("supports_function_calling")),
            vision=bool(info.get("supports_vision")),
            input_cost_per_token=info.get("input_cost_per_token") or 0.0,
            output_cost_per_token=info.get("output_cost_per_token") or 0.0,
        )

    def cost_nano_usd(self, deployment: Deployment, tokens_in: int, tokens_out: int) -> int:
        """What a call costs, in nano-dollars, at the model's listed prices."""
        caps = self.capabilities[deployment.name]
        usd = caps.input_cost_per_token * tokens_in + caps.output_cost_per_token * tokens_out
        return round(usd * 1e9)

    def estimate_nano_usd(self, deployment: Deployment, tokens_in: int) -> int:
        """The most a call is expected to cost: the prompt and the expected output."""
        return self.cost_nano_usd(deployment, tokens_in, self.expected_output_tokens)

    def count_tokens(self, deployment: Deployment, messages: list[dict[str, Any]]) -> int:
        return int(self._llm.token_counter(model=deployment.model, messages=messages))

    def count_text_tokens(self, deployment: Deployment, text: str) -> int:
        return int(self._llm.token_counter(model=deployment.model, text=text)) if text else 0

    def trusted(self, me: Identity) -> frozenset[Identity]:
        """Whose health reports count for a session running as ``me``."""
        return self.trust | {me}

    def cooling(
        self, rows: Iterable[Any], me: Identity, now: float | None = None
    ) -> dict[str, str]:
        """The providers that a trusted reporter put in cooldown (``provider`` rows), with
        why: the last error, and who reported it when it was not ``me``.

        ``now`` is in seconds since the epoch (default: the clock). Rows of other
        reporters are ignored.
        """
        now_micros = (time.time() if now is None else now) * 1e6
        trusted = self.trusted(me)
        cooling: dict[str, list[str]] = {}
        for row in sorted(rows, key=lambda row: row.owner != me):  # our own reason first
            if row.owner in trusted and row.cooldown_until.micros_since_epoch > now_micros:
                by = "" if row.owner == me else f" (reported by {row.owner.to_hex()[:8]})"
                cooling.setdefault(row.name, []).append(row.last_error + by)
        return {name: "; ".join(reasons) for name, reasons in cooling.items()}

    def candidates(
        self, needs: Needs, cooling: Mapping[str, str] | None = None
    ) -> tuple[list[Deployment], dict[str, str]]:
        """The deployments to try, in order, and why each other one was left out."""
        cooling = cooling or {}
        chosen: list[Deployment] = []
        left_out: dict[str, str] = {}
        for deployment in self.deployments:
            why = self.capabilities[deployment.name].refuses(needs)
            if why is None and deployment.name in cooling:
                why = f"cooling down after: {cooling[deployment.name]}"
            if why is None:
                chosen.append(deployment)
            else:
                left_out[deployment.name] = why
        if self.cost_aware:
            chosen.sort(key=lambda d: self.estimate_nano_usd(d, needs.tokens_in))
        return chosen, left_out

    async def stream(
        self, deployment: Deployment, messages: list[dict[str, Any]], **params: Any
    ) -> AsyncIterator[StreamPiece]:
        """Stream one call to ``deployment`` through the Router; provider errors propagate."""
        response = await self.router.acompletion(
            model=deployment.name,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            **params,
        )
        async for chunk in response:
            usage = getattr(chunk, "usage", None)
            text = ""
            if chunk.choices:
                text = chunk.choices[0].delta.content or ""
            if usage is not None:
                yield StreamPiece(text, usage.prompt_tokens, usage.completion_tokens)
            elif text:
                yield StreamPiece(text)
