"""The terminal stream: a PTY at the machine, a terminal at the technician."""
