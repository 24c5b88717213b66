"""The one-file build's entry point (``make support-client`` builds it from this file).

One build, two roles, picked from what the file carries: the Support client (a server's
stamp, support.stamp), or the agent installer (an installer package, control.agent_file;
or one of the agent's commands, agent.onefile)."""

import sys

from fjernhjelp.agent import onefile
from fjernhjelp.support.client import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(onefile.main(argv) if onefile.wanted(argv) else main(argv))
