"""Counting tokens for a context budget, as the model call will count them.

When ``litellm`` is importable (the ``chat`` extra), :func:`token_counter` uses
``litellm.token_counter`` for the chat model: the tokenizer LiteLLM itself would
use for that model. Without it, the fallback is the Llama 2 tokenizer that ships
inside ``wordllama`` (already here for embeddings, and offline). Its vocabulary
(32k entries) is smaller than those of current OpenAI models (100k-200k), so on
English text it counts more tokens than they do, not fewer: a context packed to a
budget by this count errs on the safe side for them.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Protocol

from .embedding import WordLlamaEmbedder

__all__ = ["LiteLLMTokenCounter", "TokenCounter", "WordLlamaTokenCounter", "token_counter"]


class TokenCounter(Protocol):
    """``counter(text)`` is the number of tokens in ``text``; ``name`` says which tokenizer."""

    @property
    def name(self) -> str: ...

    def __call__(self, text: str) -> int: ...


class LiteLLMTokenCounter:
    """``litellm.token_counter`` for one model."""

    def __init__(self, model: str) -> None:
        # Without this, importing litellm fetches a price map from the network.
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        self._litellm: Any = importlib.import_module("litellm")
        self.model = model

    @property
    def name(self) -> str:
        return f"litellm:{self.model}"

    def __call__(self, text: str) -> int:
        return int(self._litellm.token_counter(model=self.model, text=text))


class WordLlamaTokenCounter:
    """The Llama 2 tokenizer bundled with wordllama (the offline fallback)."""

    def __init__(self, embedder: WordLlamaEmbedder | None = None) -> None:
        self._tokenizer: Any = (embedder or WordLlamaEmbedder()).tokenizer

    @property
    def name(self) -> str:
        return "wordllama:llama-2"

    def __call__(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def token_counter(
    model: str = "gpt-4o-mini", embedder: WordLlamaEmbedder | None = None
) -> TokenCounter:
    """LiteLLM's counter for ``model`` if litellm is installed, else the bundled fallback."""
    try:
        return LiteLLMTokenCounter(model)
    except ImportError:
        return WordLlamaTokenCounter(embedder)
