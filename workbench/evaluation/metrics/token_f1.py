"""Token-overlap F1, as in the SQuAD evaluation script: answer text compared as word bags.

Normalisation (lower case, no punctuation, no articles a/an/the, single spaces) follows the
official SQuAD v1.1/v2.0 script, so numbers compare with published results.
"""

import collections
import re
import string

import datasets
import evaluate

_DESCRIPTION = "Token-level F1 between a prediction and the best-matching reference."
_KWARGS = """
predictions: list of strings. references: list of lists of strings (the best reference counts).
use_aggregator: mean over examples (default) or one value per example.
"""
_CITATION = "Rajpurkar, P. et al. (2016). SQuAD: 100,000+ Questions for Machine Comprehension."

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text):
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def f1(prediction, reference):
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


class TokenF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
        )

    def _compute(self, predictions, references, use_aggregator=True):
        scores = [max(f1(p, r) for r in refs) if refs else 0.0
                  for p, refs in zip(predictions, references, strict=True)]
        if use_aggregator:
            return {"f1": sum(scores) / len(scores) if scores else 0.0}
        return {"f1": scores}
