#!/usr/bin/env python3
"""After `swift package benchmark thresholds update`: keeps only the gated metrics in each
Benchmarks/Thresholds file (allocation counts and the same-run speed ratios; wall and CPU times
of one machine are not a gate for another), and names each file as `thresholds check` reads it.

package-benchmark 1.38.1 writes `Target.Name_with_underscores.p90.json` but reads
`Target.Name with spaces.p90.json` (its writer replaces spaces, its reader does not), so the
files are renamed back to the benchmark's own name. Our gated benchmark names have no `_`.
"""
import glob
import json
import os
import sys

GATED = {"mallocCountTotal", "speed vs libebur128 (x100)"}
directory = sys.argv[1] if len(sys.argv) > 1 else "Benchmarks/Thresholds"
for path in glob.glob(os.path.join(directory, "*.p90.json")):
    with open(path) as handle:
        figures = json.load(handle)
    kept = {key: value for key, value in figures.items() if key in GATED}
    name = os.path.basename(path).replace("_", " ")
    target = os.path.join(directory, name)
    os.remove(path)
    if not kept:
        continue
    with open(target, "w") as handle:
        json.dump(kept, handle, indent=2, sort_keys=True)
        handle.write("\n")
    print(f"{name}: {kept}")
