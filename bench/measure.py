#!/usr/bin/env python3
"""Run a command, print JSON {"wall": seconds, "maxRssKiB": peak RSS of the child, "code": exit code}.

Used by the benchmarks so that our CLI and the reference tool are timed the
same way (a fresh process each, stdout discarded)."""
import json, resource, subprocess, sys, time

t = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "maxRssKiB": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "code": r.returncode}))
