"""The campaign engine: the loop that claims due contacts and dials them (``scheduler``,
``claims``, ``slots``, ``agent_dialing``), the pure rules it follows (``strategy``,
``pacing``, ``agent_pacing``, ``calling_window``) and the recording of every result
(``results``, ``answered_calls``, ``disposition_effects``, ``store``)."""
