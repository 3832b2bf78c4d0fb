"""Pure analysis on the captured arrays: the attention arithmetic, head types, logit lens, ablation, comparison."""
