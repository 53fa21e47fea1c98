"""Compare the figures of two conversions: parity, INT8 numerics, sizes, hashes and kept-float choices.

    python tools/compare_manifests.py OLD_OUT NEW_OUT

Reads the JSON directly (no edgematte import), so manifests of any edgematte version compare. Exits 1 when a
figure differs; timings (steps, latencies) are not figures of the artefacts and are ignored. Two differences are
expected and only listed (docs/toolchain.md, Paddle Lite): a ``.nb``'s sha256 (opt writes uninitialized bytes
into its header) and the size of an int8 ``.nb`` that cannot run here (Paddle PTQ's program varies run to run;
its x86 twin, which is measured, must match).
"""

import json
import sys
from pathlib import Path

PARITY = ("max_abs", "mean_abs", "frac_over_1_255", "frac_over_bound", "images", "bound", "within_bound",
          "runs_on_host")
NUMERICS = ("mad", "max_abs", "frac_over_8_255", "sad", "mse", "grad", "conn", "within_budget")


def _load(folder):
    path = Path(folder)
    return json.loads((path / "manifest.json" if path.is_dir() else path).read_text())


def _kept_float(artefact):
    quantization = artefact.get("quantization") or {}
    return quantization.get("kept_float")


def figures(manifest: dict) -> dict:
    """``{artefact path: {figure: value}}`` plus the reference's own checks."""
    checks = manifest["reference"]["checks"]
    out = {"(reference)": {f"check{i}.max_abs": c.get("max_abs") for i, c in enumerate(checks)}}
    for a in manifest["artefacts"]:
        row = {"size_bytes": a["size_bytes"], "sha256": a["sha256"], "precision": a["precision"],
               "kept_float": json.dumps(_kept_float(a), sort_keys=True)}
        row.update({f"parity.{k}": a["parity"].get(k) for k in PARITY})
        row.update({f"numerics.{k}": (a.get("numerics") or {}).get(k) for k in NUMERICS})
        out[a["path"]] = row
    return out


def expected(path: str, key: str, row: dict) -> bool:
    """Differences that repeat runs of one conversion show too (see the module doc)."""
    if not path.endswith(".nb"):
        return False
    return key == "sha256" or (key == "size_bytes" and row.get("precision") == "int8"
                               and row.get("parity.runs_on_host") is False)


def differences(old: dict, new: dict) -> tuple:
    """(figure differences, expected differences), one line each."""
    a, b = figures(old), figures(new)
    found = [f"{p}: only in the first" for p in a if p not in b] + [f"{p}: only in the second" for p in b if p not in a]
    listed = []
    for path in a:
        for key, value in a[path].items():
            other = b.get(path, {}).get(key, value)
            if other != value:
                (listed if expected(path, key, a[path]) else found).append(f"{path} {key}: {value} -> {other}")
    return found, listed


if __name__ == "__main__":
    old, new = _load(sys.argv[1]), _load(sys.argv[2])
    found, listed = differences(old, new)
    print(f"{len(figures(old)) - 1} artefacts; {sum(len(r) for r in figures(old).values())} figures compared")
    print("\n".join(found) or "every figure identical")
    if listed:
        print("expected differences (not figures):\n  " + "\n  ".join(listed))
    sys.exit(1 if found else 0)
