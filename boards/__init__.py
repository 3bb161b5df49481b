"""qloom.boards: FPGA boards and their I/O shells."""
