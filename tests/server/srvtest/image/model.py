"""A tiny model for server integration tests (contract v1). Behaviour from argv:

good            predict every manifest row (score = hash of the file name)
crash_hidden    like good on preflight-sized inputs (<= 10 images), crash on the hidden set
slow SECONDS    like good, after sleeping SECONDS on the hidden set
survey [TAG]    an attacker: like good, after printing every file it can list and read under
                /input as one line ``survey {"<path>": "<sha256 of its bytes, 16 hex>", ...}``
                (TAG only makes another image digest)
garbage_hidden  like good on preflight-sized inputs, ";\n" as predictions.csv on the hidden set (the
                attacker of issue 19: the reader crashed on it and the run was refunded)
covert EXIT MIB CPU_S WALL_S [HASH_PREFIX [ENDING]]
                the attacker of issue 19 (and of benchmarks/bench_channels.py): on the hidden set,
                order and format its predictions so that their sha256 starts with HASH_PREFIX (hex;
                "-": any), hold MIB MiB, burn CPU until its CPU time reaches CPU_S, sleep until WALL_S
                seconds after it started, then end as ENDING: ``exit`` (the default: write the
                predictions, exit with EXIT, 0 = success), ``missing`` (write nothing), ``invalid``
                (a file without the required columns), ``oom`` (allocate until killed) or
                ``timeout`` (sleep past the limit). Each of these could be bits read from the hidden
                images. On the preflight it behaves like good.
"""

import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path

started = time.monotonic()
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
rows = [f"{name};{int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2**32:.6f}" for name in names]
text = "Filename;Final_score\n" + "".join(row + "\n" for row in rows)


def steer(prefix: str) -> str:
    """The predictions, the same numbers in the same rows, whose sha256 starts with `prefix`: the
    last 12 rows get 0-3 trailing zeros each (4^12 variants), the rest is hashed once."""
    head, tail = rows[:-12], rows[-12:]
    state = hashlib.sha256(("Filename;Final_score\n" + "".join(r + "\n" for r in head)).encode())
    for variant in range(4**12):
        body = "".join(r + "0" * ((variant >> 2 * i) & 3) + "\n" for i, r in enumerate(tail))
        h = state.copy()
        h.update(body.encode())
        if h.hexdigest().startswith(prefix):
            return "Filename;Final_score\n" + "".join(r + "\n" for r in head) + body
    raise SystemExit("no variant found")


exit_code, ending = 0, "exit"
if behaviour == "covert" and hidden:
    exit_code, mib = int(sys.argv[2]), int(sys.argv[3])
    cpu_s, wall_s = float(sys.argv[4]), float(sys.argv[5])
    prefix = sys.argv[6] if len(sys.argv) > 6 else "-"
    ending = sys.argv[7] if len(sys.argv) > 7 else "exit"
    if prefix != "-":
        text = steer(prefix)
    held = bytearray(mib * 2**20)
    held[::4096] = b"\x01" * len(range(0, len(held), 4096))  # touch every page
    while time.process_time() < cpu_s:
        pass
    time.sleep(max(0.0, wall_s - (time.monotonic() - started)))
    if ending == "oom":
        hog = []
        while True:
            hog.append(b"\x01" * 2**24)
    if ending == "timeout":
        time.sleep(10**6)
if ending == "invalid":
    text = "Name;Score\nx;1\n"
if ending != "missing":
    with open(out / "predictions.csv", "w") as fh:
        fh.write(text)
print("done", flush=True)
sys.exit(exit_code)
