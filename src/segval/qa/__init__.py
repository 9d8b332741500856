"""`segval qa`: dataset QA checks (coverage, class drift, small / fragmented / jagged masks,
temporal IoU in videos, format) with per-image flags and per-split counts."""

from segval.qa.runner import CHECKS, SCHEMA_VERSION, QAConfig, run_qa, write_report

__all__ = ["CHECKS", "SCHEMA_VERSION", "QAConfig", "run_qa", "write_report"]
