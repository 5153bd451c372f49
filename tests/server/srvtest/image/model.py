"""A tiny model for server integration tests (contract v1). Behaviour from argv:

good            predict every manifest row (score = hash of the file name)
crash_hidden    like good on preflight-sized inputs (<= 10 images), crash on the hidden set
slow SECONDS    like good, after sleeping SECONDS on the hidden set
covert EXIT MIB CPU_S SLEEP_S
                the attacker of issue 19: on the hidden set, hold MIB MiB, burn CPU_S seconds of CPU,
                sleep SLEEP_S more, write good predictions and exit with EXIT (0: the run succeeds).
                Each figure could be bits read from the hidden images.
"""

import csv
import hashlib
import os
import sys
import time
from pathlib import Path

behaviour = sys.argv[1]
inp = Path(os.environ["CSAWM_INPUT_DIR"])
out = Path(os.environ["CSAWM_OUTPUT_DIR"])
with open(inp / "manifest.csv", newline="") as fh:
    names = [row["Filename"] for row in csv.DictReader(fh)]
hidden = len(names) > 10
print(f"model {behaviour}: {len(names)} images", flush=True)
if behaviour == "crash_hidden" and hidden:
    raise ValueError("boom on the hidden set")
if behaviour == "slow" and hidden:
    time.sleep(float(sys.argv[2]))
exit_code = 0
if behaviour == "covert" and hidden:
    exit_code, mib, cpu_s, sleep_s = (
        int(sys.argv[2]),
        int(sys.argv[3]),
        float(sys.argv[4]),
        float(sys.argv[5]),
    )
    held = bytearray(mib * 2**20)
    held[::4096] = b"\x01" * len(range(0, len(held), 4096))  # touch every page
    started = time.process_time()
    while time.process_time() - started < cpu_s:
        pass
    time.sleep(sleep_s)
with open(out / "predictions.csv", "w") as fh:
    fh.write("Filename;Final_score\n")
    for name in names:
        score = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2**32
        fh.write(f"{name};{score:.6f}\n")
print("done", flush=True)
sys.exit(exit_code)
