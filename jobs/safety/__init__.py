"""Safety, bias and diversity: PII redaction, toxicity, benchmark decontamination, bias and diversity
statistics. Plain Python over documents; the Spark adapters live in jobs/spark/."""
