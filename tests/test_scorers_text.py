"""Text metrics: the shipped evaluate modules give the reference libraries' own numbers."""

import pytest

from workbench.errors import ScorerError
from workbench.evaluation import metrics
from workbench.evaluation.evalsets import Example
from workbench.evaluation.scorers import build_scorer

PAIRS = [
    ("the cat sat on the mat", "the cat is on the mat"),
    ("A quick brown fox jumps", "The quick brown fox jumped over the dog"),
    ("Zürich liegt am Zürichsee", "Zürich liegt am See"),
    ("完全に一致", "完全に一致"),
    ("", "something"),
]


@pytest.mark.parametrize(("output", "reference"), PAIRS)
@pytest.mark.parametrize("variant", ["rouge1", "rouge2", "rougeL"])
def test_rouge_equals_rouge_score(output, reference, variant):
    from rouge_score import rouge_scorer

    want = rouge_scorer.RougeScorer([variant]).score(reference, output)[variant].fmeasure
    got = build_scorer("rouge", {"variant": variant})(output, Example("e", {"expected": reference}))
    assert got.value == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize(("output", "reference"), PAIRS)
def test_bleu_and_chrf_equal_sacrebleu(output, reference):
    import sacrebleu
    from sacrebleu.metrics import CHRF

    example = Example("e", {"expected": reference})
    bleu = build_scorer("bleu")(output, example).value
    assert bleu == pytest.approx(sacrebleu.sentence_bleu(output, [reference]).score, abs=1e-9)
    chrf = build_scorer("chrf", {"word_order": 2})(output, example).value
    assert chrf == pytest.approx(CHRF(word_order=2).sentence_score(output, [reference]).score,
                                 abs=1e-9)


@pytest.mark.parametrize(
    ("output", "references", "f1"),
    [
        ("Paris", ["paris"], 1.0),
        ("The Eiffel Tower", ["Eiffel tower!"], 1.0),  # articles and punctuation ignored
        ("in Paris, France", ["Paris"], 0.5),  # precision 1/3, recall 1 -> 2*(1/3)/(4/3)
        ("London", ["Paris"], 0.0),
        ("", ["Paris"], 0.0),
        ("Paris", ["Lyon", "paris"], 1.0),  # the best reference counts
    ],
)
def test_token_f1_follows_the_squad_script(output, references, f1):
    got = build_scorer("token_f1")(output, Example("e", {"expected": references}))
    assert got.value == pytest.approx(f1)


def test_corpus_metrics_combine_like_evaluate():
    import sacrebleu

    predictions = ["the cat sat on the mat today", "a dog barked at the mailman"]
    references = [["the cat sat on the mat"], ["the dog barked at the postman"]]
    result = metrics.combine(["token_f1", "sacrebleu"]).compute(predictions=predictions,
                                                                 references=references)
    want = sacrebleu.corpus_bleu(predictions, [[r[0] for r in references]]).score
    assert result["score"] == pytest.approx(want) and 0 < want < 100
    assert 0 < result["f1"] < 1


def test_a_hub_metric_fails_at_once_offline_with_the_way_out():
    with pytest.raises(ScorerError, match="hub is offline.*path to a metric module"):
        build_scorer("evaluate", {"metric": "bertscore", "key": "f1"})


def test_a_metric_module_by_path(tmp_path):
    module = tmp_path / "length_ratio.py"
    module.write_text(
        "import datasets\nimport evaluate\n\n\n"
        "class LengthRatio(evaluate.Metric):\n"
        "    def _info(self):\n"
        "        return evaluate.MetricInfo(description='', citation='', features=datasets."
        "Features({'predictions': datasets.Value('string'), 'references': datasets.Value("
        "'string')}))\n\n"
        "    def _compute(self, predictions, references):\n"
        "        return {'ratio': len(predictions[0]) / len(references[0])}\n")
    scorer = build_scorer("evaluate", {"metric": str(module), "key": "ratio",
                                       "references_as_list": False})
    assert scorer("abcd", Example("e", {"expected": "ab"})).value == 2.0


def test_a_huge_output_is_scored():
    score = build_scorer("rouge")("word " * 20_000, Example("e", {"expected": "word"}))
    assert 0 < score.value < 0.01
