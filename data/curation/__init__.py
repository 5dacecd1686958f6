"""Data curation at web scale: extraction, dedup, decontamination and mixture search (issue 32)."""
