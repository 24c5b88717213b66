"""Server-rendered pages: templates and static files (the message catalogue is in i18n/)."""
