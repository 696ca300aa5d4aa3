"""Test doubles that ship with the package, as :mod:`trio.testing` does: the simulated engine
(:mod:`.engine`), the fault engine (:mod:`.faults`), the fake orchestrator (:mod:`.orchestrator`,
speaking v1 or v2 through :mod:`.orchestrator_wires`), the in-memory proxy harness
(:mod:`.harness`) and the HLS player simulator (:mod:`.players`); for real sockets, an engine
server that can be killed, hung and started again (:mod:`.engine_server`) and an MPEG-TS player
that tells media from null packets (:mod:`.ts_reader`).

Tests, benchmarks and the demo use them. Nothing else in the package imports this package, and
nothing here imports pytest: any Trio run can use them.
"""
