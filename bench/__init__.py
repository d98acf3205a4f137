"""Benchmarks: programs run on demand (`make bench`), never timed unit tests.

Each scenario measures ours and a baseline in the same run, on the same machine, each in a fresh process
(so peak RSS is the process's own), and writes `bench/results/<scenario>.json`; `python -m bench` prints
the Markdown table that README.md carries.
"""
