"""Web basics every reader shares: one URL module and one bytes-to-text decoder."""
