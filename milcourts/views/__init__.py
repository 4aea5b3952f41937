"""What the reports show: per-report views, generated sentences, charts and display helpers."""
