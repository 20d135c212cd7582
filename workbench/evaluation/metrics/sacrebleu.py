"""Corpus BLEU through ``sacrebleu``: an offline copy of the hub's ``sacrebleu`` metric API."""

import datasets
import evaluate

_DESCRIPTION = "BLEU as computed by sacrebleu (reproducible tokenisation and settings)."
_KWARGS = """
predictions: list of strings. references: list of lists of strings (one list per prediction;
every prediction needs the same number of references). smooth_method, smooth_value,
lowercase, tokenize, use_effective_order: as sacrebleu.corpus_bleu.
"""
_CITATION = "Post, M. (2018). A Call for Clarity in Reporting BLEU Scores. WMT."


class Sacrebleu(evaluate.Metric):
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

    def _compute(self, predictions, references, smooth_method="exp", smooth_value=None,
                 lowercase=False, tokenize=None, use_effective_order=False):
        import sacrebleu

        counts = {len(r) for r in references}
        if len(counts) > 1:
            raise ValueError("sacrebleu needs the same number of references for every prediction")
        transposed = [list(refs) for refs in zip(*references, strict=True)]
        result = sacrebleu.corpus_bleu(
            predictions, transposed, smooth_method=smooth_method, smooth_value=smooth_value,
            lowercase=lowercase, tokenize=tokenize, use_effective_order=use_effective_order)
        return {"score": result.score, "counts": result.counts, "totals": result.totals,
                "precisions": result.precisions, "bp": result.bp, "sys_len": result.sys_len,
                "ref_len": result.ref_len}
