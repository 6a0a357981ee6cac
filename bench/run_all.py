"""make bench: run every benchmark and write docs/benchmarks.md.

usage: python3 bench/run_all.py [--quick]   (--quick: fewer samples, for a try)
"""

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def run(script, *args):
    print(f"== {script} {' '.join(args)}", file=sys.stderr, flush=True)
    out = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=HERE)
    if out.returncode != 0:
        return f"### {script}: failed\n\n```\n{out.stderr[-2000:]}\n```\n"
    return out.stdout


def main() -> None:
    quick = "--quick" in sys.argv
    sections = [
        "### Pool parsing (items per second)\n\n```\n" + run("pool_parse.py", "--runs", "3" if quick else "7")
        + "```\n\nGoal: within 3x of a plain read() at 1,000 records and beyond.\n",
        run("reaction.py", "--updates", "200" if quick else "1000", "--poll-updates", "3" if quick else "20"),
        "### A pass against the pool's size\n\n" + run("pool_scale.py", "--runs", "3" if quick else "5")
        + "\nGoal: linear (20,000 items about 10 times 2,000), memory under about twice the pool file.\n",
        run("footprint.py", "--idle", "5" if quick else "60", "--updates", "1000" if quick else "10000",
            "--runs", "3" if quick else "10"),
    ]
    if os.geteuid() == 0:
        sections.append(run("guest.py", "--runs", "1" if quick else "3"))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    header = (
        "# Benchmarks\n\n"
        f"Written by `make bench` (`python3 bench/run_all.py`) on {time.strftime('%Y-%m-%d')}: "
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"
        f"{' (quick run: fewer samples)' if quick else ''}. Each table says how its figures were obtained; "
        "rerun a single one with `python3 bench/<name>.py --help`.\n\n"
    )
    text = header + "\n".join(sections)
    (REPO / "docs").mkdir(exist_ok=True)
    (REPO / "docs" / "benchmarks.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
