"""Export every example to fla's config.json with hybc, build each in fla (on torch's meta
device, via fla_params.py) and compare fla's parameter names and shapes with hyb's IR.

    cargo build -p hybc
    /work/venv-fla/bin/python tools/fla_oracle/check_exports.py

Needs the fla venv described in tests/fla/README.md. Prints one line per example and
exits non-zero on any difference.
"""
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
HYBC = ROOT / "target" / "debug" / "hybc"


def hybc(*args):
    return subprocess.run([str(HYBC), *args], capture_output=True, text=True, cwd=ROOT)


def main():
    examples = sorted(p for p in (ROOT / "examples").rglob("*.hyb") if p.name != "mixers.hyb")
    work = pathlib.Path(tempfile.mkdtemp())
    configs, sources = [], {}
    for path in examples:
        stem = str(path.relative_to(ROOT / "examples").with_suffix("")).replace("/", "__")
        out = hybc("compile", str(path), "--emit", "fla-config")
        if out.returncode != 0:
            print(f"refused  {stem}: {out.stderr.strip().splitlines()[0]}")
            continue
        config = work / f"{stem}.json"
        config.write_text(out.stdout)
        configs.append(config)
        sources[stem] = path
    subprocess.run([sys.executable, str(ROOT / "tools/fla_oracle/fla_params.py"), "--out", str(work / "out"),
                    *map(str, configs)], check=True, capture_output=True)
    failures = 0
    for stem, path in sources.items():
        fla = json.loads((work / "out" / f"{stem}.json").read_text())
        ours = json.loads(hybc("compile", str(path), "--emit", "ir", "--format", "json").stdout)
        theirs = {name: shape for name, shape in fla["params"]}
        mine = {name: shape for name, shape in ours["params"]}
        same = theirs == mine and fla["params_total"] == ours["params_total"]
        failures += not same
        print(f"{'same' if same else 'DIFFERENT'}     {stem}: {ours['params_total']:,} parameters")
    print(f"{len(sources)} exported, {failures} different")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
