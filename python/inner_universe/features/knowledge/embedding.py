"""Embedders: text to vectors, behind one small interface.

Anything with a ``name``, a ``dimension`` and ``embed(texts)`` is an
:class:`Embedder`; ingestion and search use nothing else, so another model (a
LiteLLM embedding model when online, say) plugs in without touching the rest.
The default, :class:`WordLlamaEmbedder`, is a 256-dimension static model that
ships inside the ``wordllama`` wheel: it loads in well under a second and never
touches the network.

Vectors travel to the module as little-endian float32 bytes
(:func:`vector_to_bytes`, :func:`vector_from_bytes`).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .errors import EmbeddingError, MissingExtraError

__all__ = [
    "PASSAGE_TEXT_VERSION",
    "Embedder",
    "Vectors",
    "WordLlamaEmbedder",
    "check_vectors",
    "import_extra",
    "normalized",
    "passage_text",
    "vector_from_bytes",
    "vector_to_bytes",
]

Vectors = npt.NDArray[np.float32]
"""A (rows, dimension) float32 matrix."""

_FLOAT32_LE = np.dtype("<f4")


def import_extra(module: str) -> Any:
    """Import a dependency of the ``knowledge`` extra, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed ({exc}); install the extra: "
            "pip install 'inner-universe[knowledge]'"
        ) from None


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of one fixed dimension."""

    @property
    def name(self) -> str:
        """Stored with every chunk, so vectors of different models never mix."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, ``dimension`` columns."""
        ...


class WordLlamaEmbedder:
    """The bundled offline model: WordLlama ``l2_supercat`` at 256 dimensions."""

    def __init__(self, dimension: int = 256, batch_size: int = 256) -> None:
        wordllama = import_extra("wordllama")
        # The loader looks for its weights in a cache folder and would try to download
        # them; they ship inside the package, so point it there and forbid downloads.
        self._model = wordllama.WordLlama.load(
            config="l2_supercat",
            cache_dir=Path(wordllama.__file__).parent,
            disable_download=True,
            dim=256,
            trunc_dim=None if dimension == 256 else dimension,
        )
        self._dimension = dimension
        self._batch_size = batch_size

    @property
    def name(self) -> str:
        return f"wordllama/l2_supercat-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        vectors = self._model.embed(list(texts), norm=True, batch_size=self._batch_size)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self._dimension)

    @property
    def tokenizer(self) -> Any:
        """The model's own tokenizer (Llama 2's, a ``tokenizers.Tokenizer``)."""
        return self._model.tokenizer


PASSAGE_TEXT_VERSION = 1
"""Changes when :func:`passage_text` does, so stored chunk sets are re-embedded."""
_MARKUP = re.compile(r"[`*_|#>\[\]()]+|-{3,}|={3,}")


def passage_text(title: str, heading: str, text: str) -> str:
    """What the embedder sees for a chunk: where it is, then its words without markup.

    A static model averages token vectors, so table pipes and backticks dilute a
    chunk's meaning, and a chunk cut from its section loses what it is about; the
    document title and section heading put that back (the stored text is unchanged).
    """
    header = " > ".join(part for part in (title, heading) if part)
    words = " ".join(_MARKUP.sub(" ", text).split())
    return f"{header}\n{words}" if header else words


def check_vectors(embedder: Embedder, texts: Sequence[str], vectors: Any) -> Vectors:
    """``vectors`` as float32 if it has one row of the embedder's dimension per text."""
    array = np.asarray(vectors, dtype=np.float32)
    want = (len(texts), embedder.dimension)
    if array.shape != want:
        raise EmbeddingError(
            f"embedder {embedder.name} returned shape {array.shape} for {len(texts)} texts; "
            f"expected {want}"
        )
    if not np.isfinite(array).all():
        raise EmbeddingError(f"embedder {embedder.name} returned NaN or infinite values")
    return array


def normalized(vectors: Vectors) -> Vectors:
    """Rows scaled to unit length (zero rows stay zero), so a dot product is the cosine."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    result: Vectors = (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)
    return result


def vector_to_bytes(vector: Vectors) -> bytes:
    """A vector as little-endian float32 bytes (how the module stores it)."""
    return np.ascontiguousarray(vector, dtype=_FLOAT32_LE).tobytes()


def vector_from_bytes(data: bytes, dimension: int) -> Vectors:
    """The vector stored as ``data``; raises if the size is not ``dimension`` float32s."""
    if len(data) != dimension * 4:
        raise EmbeddingError(
            f"embedding is {len(data)} bytes; {dimension} float32s are {dimension * 4}"
        )
    return np.frombuffer(data, dtype=_FLOAT32_LE).astype(np.float32)
