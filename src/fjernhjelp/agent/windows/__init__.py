"""The agent's Tk programs (consent, indicator, chat window), each run in its own process."""
