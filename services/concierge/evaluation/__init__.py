"""Quality measurements over a question set: `concierge eval retrieval` and `concierge eval answers`."""
