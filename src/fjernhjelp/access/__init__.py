"""Access on the server side: machines and their enrolment, installer packages, and
remote sessions (requesting, ticketing, ending, cutting)."""
