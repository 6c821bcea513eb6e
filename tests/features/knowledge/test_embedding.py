"""The bundled embedder works offline; any object with the interface plugs in."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from inner_universe.features.knowledge import Embedder, EmbeddingError, WordLlamaEmbedder
from inner_universe.features.knowledge.embedding import check_vectors, passage_text


def test_the_bundled_model_embeds_without_a_network(embedder: WordLlamaEmbedder) -> None:
    vectors = embedder.embed(["a cat sat on the mat", "a kitten rested on a rug", "tax law"])
    assert vectors.shape == (3, 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert embedder.embed([]).shape == (0, 256)
    assert isinstance(embedder, Embedder)


class Letters:
    """A toy embedder: letter counts. Enough to show the interface is all that is used."""

    name = "letters-26"
    dimension = 26

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 26), dtype=np.float32)
        for row, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    out[row, ord(ch) - 97] += 1
        return out


def test_another_embedder_plugs_in() -> None:
    letters = Letters()
    assert isinstance(letters, Embedder)
    assert check_vectors(letters, ["abc"], letters.embed(["abc"])).shape == (1, 26)


def test_wrong_vectors_are_refused() -> None:
    letters = Letters()
    with pytest.raises(EmbeddingError, match=r"shape \(1, 26\) for 2 texts"):
        check_vectors(letters, ["a", "b"], letters.embed(["a"]))
    with pytest.raises(EmbeddingError, match="NaN"):
        check_vectors(letters, ["a"], np.full((1, 26), np.nan))


def test_what_the_embedder_sees_for_a_chunk() -> None:
    text = "| `Gzip` | the **default** |\n|---|---|"
    assert passage_text("README", "Setup", text) == "README > Setup\nGzip the default"
    assert passage_text("", "", "plain words") == "plain words"
