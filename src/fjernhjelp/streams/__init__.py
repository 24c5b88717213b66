"""Stream services inside the tunnel, one package each: its wire format, the agent's side
(service) and the technician's side (client), so the agent, the CLI and the browser read one
definition. Runs on customer machines: imports no server, portal or database code."""
