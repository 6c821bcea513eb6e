"""The offline provider: a LiteLLM custom provider that streams deterministic text.

Model names ``offline/<anything>`` reach it through litellm like any provider
(``litellm.acompletion(model="offline/echo", stream=True, ...)``), so the demo
and the tests exercise the real LiteLLM path with no network and no key.

What it streams, word by word, ``pace`` seconds apart: the ``script`` passed
with the call, or else "You said: <the last user message>". If the last
message is an assistant message holding a proper start of that reply (a
stream being continued after another provider failed), it streams only the rest.
``fail_after=N`` makes it raise after N words, to test fallbacks.

Two models are in LiteLLM's price map (registered offline, with made-up
prices, so the ledger has costs to add up): ``offline/echo`` (8k context, no
tools or vision, cheap) and ``offline/large`` (128k context, tools and vision,
ten times the price). Other ``offline/*`` names stream the same, at no cost.

Only :mod:`.llm` imports this module, after configuring litellm.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import litellm
from litellm.llms.custom_llm import CustomLLM, CustomLLMError

__all__ = ["MODELS", "OfflineProvider", "register", "reply_text"]

PROVIDER = "offline"
DEFAULT_PACE = 0.02

MODELS: dict[str, dict[str, Any]] = {
    "offline/echo": {
        "max_tokens": 8192,
        "max_input_tokens": 8192,
        "max_output_tokens": 4096,
        "input_cost_per_token": 0.5e-6,
        "output_cost_per_token": 1.5e-6,
        "supports_function_calling": False,
        "supports_vision": False,
    },
    "offline/large": {
        "max_tokens": 128000,
        "max_input_tokens": 128000,
        "max_output_tokens": 16384,
        "input_cost_per_token": 5e-6,
        "output_cost_per_token": 15e-6,
        "supports_function_calling": True,
        "supports_vision": True,
    },
}

_WORDS = re.compile(r"\s*\S+\s*")


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def reply_text(messages: list[dict[str, Any]], script: str | None) -> str:
    """What the provider answers to ``messages``, before any continuation is cut off."""
    if script is not None:
        return script
    last_user = next(
        (_content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
        "",
    )
    return f"You said: {last_user}"


def _remaining(messages: list[dict[str, Any]], text: str) -> str:
    """The part of ``text`` still to stream when the last message already holds its start."""
    if messages and messages[-1].get("role") == "assistant":
        prefix = _content_text(messages[-1].get("content"))
        if prefix and len(prefix) < len(text) and text.startswith(prefix):
            return text[len(prefix) :]
    return text


class OfflineProvider(CustomLLM):
    """Streams scripted or echoed words at a set pace; see the module's docstring."""

    async def astreaming(  # type: ignore[override]
        self,
        model: str,
        messages: list[dict[str, Any]],
        optional_params: dict[str, Any],
        **_: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        text = _remaining(messages, reply_text(messages, optional_params.get("script")))
        pace = float(optional_params.get("pace", DEFAULT_PACE))
        fail_after = optional_params.get("fail_after")
        words = _WORDS.findall(text)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for count, word in enumerate(words):
            if fail_after is not None and count >= int(fail_after):
                raise CustomLLMError(  # type: ignore[no-untyped-call]
                    status_code=503,
                    message=f"offline/{model} dropped the stream after {count} words",
                )
            if pace > 0:  # on a schedule, so late wake-ups do not add up
                await asyncio.sleep(max(0.0, started + (count + 1) * pace - loop.time()))
            yield {"text": word, "is_finished": False, "finish_reason": "", "usage": None}
        prompt_tokens = litellm.token_counter(model="gpt-3.5-turbo", messages=messages)
        yield {
            "text": "",
            "is_finished": True,
            "finish_reason": "stop",
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(words),
                "total_tokens": prompt_tokens + len(words),
            },
        }


def register(module: ModuleType) -> None:
    """Register the provider and its models' prices with ``module`` (litellm), once."""
    if any(entry.get("provider") == PROVIDER for entry in module.custom_provider_map):
        return
    module.custom_provider_map.append({"provider": PROVIDER, "custom_handler": OfflineProvider()})
    logger = logging.getLogger("LiteLLM")
    level = logger.level
    logger.setLevel(logging.ERROR)  # register_model warns about cache prices we do not set
    try:
        module.register_model(
            {
                name: {**info, "litellm_provider": PROVIDER, "mode": "chat"}
                for name, info in MODELS.items()
            }
        )
    finally:
        logger.setLevel(level)
