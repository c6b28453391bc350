"""
The Mux protocol: sans-IO framing and session state machines, and the thin
Twisted protocols (L{txscales.mux.protocol}) that drive them.
"""
