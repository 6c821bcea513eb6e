"""The labelled evaluation set: hybrid search beats vector and lexical search alone."""

from __future__ import annotations

from inner_universe.features.knowledge import WordLlamaEmbedder, evaluation


def test_the_evaluation_set_is_a_few_hundred_chunks_with_answerable_labels() -> None:
    evalset = evaluation.load()
    assert len(evalset.queries) >= 50
    for item in evalset.queries:
        assert " ".join(item.answer.split()) in " ".join(evalset.corpus[item.file].split())


def test_hybrid_beats_each_alone_on_recall_at_5_and_mrr(embedder: WordLlamaEmbedder) -> None:
    evalset = evaluation.load()
    index = evaluation.build_index(evalset, embedder)
    assert 200 <= len(index) <= 600
    vector, lexical, hybrid = (
        evaluation.evaluate(index, evalset, mode) for mode in ("vector", "lexical", "hybrid")
    )
    print(vector, lexical, hybrid, sep="\n")
    assert hybrid.recall_at_k > max(vector.recall_at_k, lexical.recall_at_k)
    assert hybrid.mrr > max(vector.mrr, lexical.mrr)
