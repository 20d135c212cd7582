"""The A/B comparison report; it lives with the statistics that build it."""

from workbench.stats.report import ComparisonReport

__all__ = ["ComparisonReport"]
