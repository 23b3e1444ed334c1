"""Copyright and licence screening in plain Python: licences, notices, policy, protected-work overlap."""
