"""The report, regenerated from runs.jsonl alone: the summary statistics (`summary`: label
budgets, paired effects, intervals, corrected verdicts), which records are current
(`provenance`), and the writers (`write`: tables and REPORT.md, `text`, `setup`, `plots`)."""
