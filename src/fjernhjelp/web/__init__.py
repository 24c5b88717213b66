"""Server-rendered pages: templates, static files and the message catalogue."""
