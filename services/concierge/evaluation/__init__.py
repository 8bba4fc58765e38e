"""Quality measurements over a question set: `concierge eval retrieval` (and later `eval answers`)."""
