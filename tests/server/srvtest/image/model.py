"""A tiny model for server integration tests (contract v1). Behaviour from argv:

good            predict every manifest row (score = hash of the file name)
crash_hidden    like good on preflight-sized inputs (<= 10 images), crash on the hidden set
slow SECONDS    like good, after sleeping SECONDS on the hidden set
survey [TAG]    an attacker: like good, after printing every file it can list and read under
                /input as one line ``survey {"<path>": "<sha256 of its bytes, 16 hex>", ...}``
                (TAG only makes another image digest)
garbage_hidden  like good on preflight-sized inputs, ";\n" as predictions.csv on the hidden set (the
                attacker of issue 19: the reader crashed on it and the run was refunded)
"""

import csv
import hashlib
import json
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
if behaviour == "survey":
    seen = {
        str(path.relative_to(inp)): hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for path in sorted(inp.rglob("*"))
        if path.is_file()
    }
    print("survey " + json.dumps(seen, separators=(",", ":")), flush=True)
if behaviour == "garbage_hidden" and hidden:
    (out / "predictions.csv").write_bytes(b";\n")
    sys.exit(0)
with open(out / "predictions.csv", "w") as fh:
    fh.write("Filename;Final_score\n")
    for name in names:
        score = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2**32
        fh.write(f"{name};{score:.6f}\n")
print("done", flush=True)
