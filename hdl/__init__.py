"""qloom.hdl: Amaranth components of the streaming dataflow."""
