"""Text extraction: HTML to main text; documents that are already text pass through."""
