#!/usr/bin/env python3
"""Run a command, print JSON {"wall": seconds, "maxRssKiB": peak RSS of the child, "code": exit code}.

Used by the benchmarks so that our CLI and the reference tool are timed the
same way (a fresh process each, stdout discarded, or written to FILE with
`measure.py --stdout FILE CMD...` when the caller checks what it printed)."""
import json, resource, subprocess, sys, time

argv = sys.argv[1:]
out = subprocess.DEVNULL
if argv[:1] == ["--stdout"]:
    out = open(argv[1], "wb")
    argv = argv[2:]
t = time.perf_counter()
r = subprocess.run(argv, stdout=out)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "maxRssKiB": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "code": r.returncode}))
