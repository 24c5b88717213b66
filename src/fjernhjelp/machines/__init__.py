"""Machines: enrolling agents, installer packages, what agents report, removal."""
