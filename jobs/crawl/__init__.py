"""The polite crawler: HTTP fetching, robots.txt and AI opt-outs, the frontier, WARC writing."""
