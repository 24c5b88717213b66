"""The chat stream: text between the technician and the end user."""
