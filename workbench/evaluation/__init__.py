"""Layer 3, the evaluation engine: eval sets, data checks, scorers, text metrics,
statistics and the comparison report, the regression gate, classification and feedback."""
