"""Reports that put the analysis and figures together (HTML, CSV, PNG/SVG/PDF)."""

from lens_odesteer.report.comparison import ComparisonReport, comparison_report

__all__ = ["ComparisonReport", "comparison_report"]
