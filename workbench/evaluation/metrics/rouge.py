"""ROUGE through Google's ``rouge_score``: an offline copy of the hub's ``rouge`` metric API.

With ``use_aggregator=True`` the result is the plain mean over examples (the hub's metric
reports a bootstrap mid-point, which is random; a mean is reproducible).
"""

import datasets
import evaluate

_DESCRIPTION = "ROUGE-N and ROUGE-L F-measures between predictions and references."
_KWARGS = """
predictions: list of strings. references: list of strings, or list of lists of strings.
rouge_types: e.g. ["rouge1", "rouge2", "rougeL", "rougeLsum"]. use_aggregator: mean over
examples (default) or one value per example. use_stemmer: Porter stemming before matching.
"""
_CITATION = "Lin, C.-Y. (2004). ROUGE: A Package for Automatic Evaluation of Summaries."


class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=[
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Sequence(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("string"),
                                   "references": datasets.Value("string")}),
            ],
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(self, predictions, references, rouge_types=None, use_aggregator=True,
                 use_stemmer=False):
        from rouge_score import rouge_scorer

        rouge_types = list(rouge_types or ["rouge1", "rouge2", "rougeL", "rougeLsum"])
        scorer = rouge_scorer.RougeScorer(rouge_types=rouge_types, use_stemmer=use_stemmer)
        per_type = {t: [] for t in rouge_types}
        for prediction, reference in zip(predictions, references, strict=True):
            if isinstance(reference, str):
                scores = scorer.score(reference, prediction)
            else:
                scores = scorer.score_multi(list(reference), prediction)
            for t in rouge_types:
                per_type[t].append(scores[t].fmeasure)
        if use_aggregator:
            return {t: (sum(v) / len(v) if v else 0.0) for t, v in per_type.items()}
        return per_type
