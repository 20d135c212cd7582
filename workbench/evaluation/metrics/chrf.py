"""chrF and chrF++ through ``sacrebleu``: an offline copy of the hub's ``chrf`` metric API."""

import datasets
import evaluate

_DESCRIPTION = "Character n-gram F-score (chrF; chrF++ with word_order=2), by sacrebleu."
_KWARGS = """
predictions: list of strings. references: list of lists of strings (same count for every
prediction). char_order (6), word_order (0; 2 gives chrF++), beta (2), lowercase,
whitespace, eps_smoothing: as sacrebleu.CHRF.
"""
_CITATION = "Popović, M. (2015). chrF: character n-gram F-score for automatic MT evaluation."


class Chrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
            codebase_urls=["https://github.com/mjpost/sacreBLEU"],
        )

    def _compute(self, predictions, references, char_order=6, word_order=0, beta=2,
                 lowercase=False, whitespace=False, eps_smoothing=False):
        from sacrebleu.metrics import CHRF

        counts = {len(r) for r in references}
        if len(counts) > 1:
            raise ValueError("chrf needs the same number of references for every prediction")
        transposed = [list(refs) for refs in zip(*references, strict=True)]
        metric = CHRF(char_order=char_order, word_order=word_order, beta=beta,
                      lowercase=lowercase, whitespace=whitespace, eps_smoothing=eps_smoothing)
        result = metric.corpus_score(predictions, transposed)
        return {"score": result.score, "char_order": char_order, "word_order": word_order,
                "beta": beta}
