"""The desktop stream: the customer's X screen as RFB 3.8, inside the tunnel.

``service`` and ``viewer`` (with capture, damage, encoders, input, clipboard) run on the
customer machine; ``technician`` is the technician's local VNC port. This package file
imports none of them, so the technician's side loads no X, numpy or agent code.
"""
