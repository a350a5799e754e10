"""The functions that held the most samples in a ``py-spy record -f raw`` file.

    python bench/profile_summary.py PROFILE.txt [--top 15]

Self: the sampled frame itself. Inclusive: the frame anywhere on the stack. Per process when the
recording has several (``--subprocesses``). With ``--gil`` recordings, a share is of the samples in
which a thread held its process's GIL.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path


def summarise(path: Path, top: int) -> str:
    """Per process (``--subprocesses`` recordings name them), the top frames by samples."""
    processes: dict[str, tuple[Counter[str], Counter[str]]] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        # a process frame quotes its command line, which may hold ';' itself
        frames = re.sub(r'"[^"]*"', lambda m: m.group(0).replace(";", ","), stack).split(";")
        owners = [f for f in frames if f.startswith("process ")]
        process = _process(owners[-1]) if owners else "(one process)"
        functions = [_name(f) for f in frames if not f.startswith("process ")]
        own, anywhere = processes.setdefault(process, (Counter(), Counter()))
        own[functions[-1] if functions else "(no frame)"] += samples
        for function in set(functions):
            anywhere[function] += samples
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples"]
    for process, (own, anywhere) in sorted(processes.items(), key=lambda p: -sum(p[1][0].values())):
        lines.append(f"  {process}: {sum(own.values()) / total:.1%} of the samples; self:")
        lines += [f"    {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
        lines.append("   inclusive:")
        lines += [f"    {n / total:6.1%}  {name}" for name, n in anywhere.most_common(top * 2)]
    return "\n".join(lines)


def _process(frame: str) -> str:
    """``process 12:"python -m imagehub serve"`` -> ``pid 12 (python -m imagehub serve)``."""
    pid, _, command = frame.removeprefix("process ").partition(":")
    return f"pid {pid} ({command.strip(chr(34))[:60]})"


def _name(frame: str) -> str:
    """``func (path/file.py:12)`` -> ``func (file.py)``."""
    function, _, where = frame.partition(" (")
    return f"{function} ({where.split(':')[0].rsplit('/', 1)[-1]})" if where else function


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
