"""The papers' experiments, on a resumable and distributable evaluation harness."""
