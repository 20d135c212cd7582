"""A/B statistics for prompt variants: paired tests, intervals, corrections, power, verdicts.

Every variant answers the same eval examples, so the comparison is *paired*: an example that
is hard for one variant is usually hard for the other, and comparing per example removes that
shared difficulty from the noise. Repeats of one example at temperature > 0 are not
independent evidence, so the example (not the call) is the unit of analysis throughout: scores
are averaged per example first. ``docs/statistics.md`` explains each choice and its reference.
"""

from ._frame import SCORE_PREFIX, Correction, McNemarMethod, MetricKind, StatsInputError
from .comparison import compare, compare_all
from .noninferiority import MIN_PAIRED, NonInferiority
from .paired import (
    PairedTest,
    adjust_pvalues,
    mcnemar_pvalue,
    paired_pvalues,
    paired_test,
    tango_interval,
)
from .power import expected_power, minimum_detectable_effect, required_sample_size
from .report import ComparisonReport
from .summary import consistency, summarize, wilson_interval
from .types import CompareOptions, ErrorCheck, MetricComparison, PairComparison
from .verdict import format_p, p_text

__all__ = [
    "MIN_PAIRED",
    "SCORE_PREFIX",
    "CompareOptions",
    "ComparisonReport",
    "Correction",
    "ErrorCheck",
    "McNemarMethod",
    "MetricComparison",
    "MetricKind",
    "NonInferiority",
    "PairComparison",
    "PairedTest",
    "StatsInputError",
    "adjust_pvalues",
    "compare",
    "compare_all",
    "consistency",
    "expected_power",
    "format_p",
    "mcnemar_pvalue",
    "minimum_detectable_effect",
    "p_text",
    "paired_pvalues",
    "paired_test",
    "required_sample_size",
    "summarize",
    "tango_interval",
    "wilson_interval",
]
