"""Where the operator's CPU goes: py-spy sampling the operator process while a scenario runs.

    python -m bench.run --only 3k --profile bench/results/profile     (or `make profile`)
    python -m bench.profile bench/results/profile/3k.txt              summarize a saved profile

py-spy samples from outside the process (no code change, little overhead with --nonblocking);
its raw output is one line per distinct stack, `frame;frame;…;frame count`, with frames as
`function (path:line)`. It samples only the thread holding the GIL (`--gil`): without that,
threads blocked on a socket or on the GIL itself count as busy, and a profile of an asyncio loop
plus a thread pool shows mostly waiting. So the samples are the operator's Python CPU time.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

RATE_HZ = 50
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^:()]*)(?::\d+)?\)$")


class Profiler:
    """py-spy recording `pid` into `output` until stopped."""

    def __init__(self, pid: int, output: Path) -> None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(py_spy).exists():
            raise RuntimeError("py-spy is not installed: `pip install py-spy` (or `make profile`)")
        output.parent.mkdir(parents=True, exist_ok=True)
        self.output = output
        self._process = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(RATE_HZ),
                "--nonblocking",
                "--gil",
                "--format",
                "raw",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> None:
        """Stops sampling and waits for py-spy to write the profile."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def package_of(path: str) -> str:
    """A frame's file as a package to blame: `kopf`, `kubernetes`, `bentham.core`, `asyncio`, …"""
    parts = Path(path).with_suffix("").parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    if "bentham" in parts:
        rest = parts[parts.index("bentham") :]
        return ".".join(rest[:2]) if len(rest) > 2 else "bentham"
    stdlib = next((i for i, part in enumerate(parts) if re.fullmatch(r"python3\.\d+", part)), None)
    if stdlib is not None and stdlib + 1 < len(parts):
        return parts[stdlib + 1]
    return path


def summarize(profile: Path, top: int = 25) -> str:
    """The functions and packages with the most CPU samples, by self time and inclusive time."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    package_inclusive: Counter[str] = Counter()
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [
            frame for frame in stack.split(";") if not frame.startswith("process ") and not frame.startswith("thread ")
        ]
        if not frames:
            continue
        names = [_name(frame) for frame in frames]
        self_time[names[-1]] += count
        by_package[_package(frames[-1])] += count
        for name in set(names):
            inclusive[name] += count
        for package in {_package(frame) for frame in frames}:
            package_inclusive[package] += count
    if not total:
        return f"{profile}: no samples"

    def rows(tally: Counter[str]) -> list[str]:
        return [f"  {100 * count / total:5.1f}%  {name}" for name, count in tally.most_common(top)]

    seconds = total / RATE_HZ
    return "\n".join(
        [
            f"{profile}: {total} samples at {RATE_HZ} Hz = {seconds:.0f} CPU-s",
            "by package, self time:",
            *rows(by_package),
            "by package, inclusive:",
            *rows(package_inclusive),
            "by function, self time:",
            *rows(self_time),
            "by function, inclusive:",
            *rows(inclusive),
        ]
    )


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    return f"{match['function']} ({_short(match['path'])})"


def _package(frame: str) -> str:
    match = _FRAME.match(frame)
    return package_of(match["path"]) if match else frame


def _short(path: str) -> str:
    parts = Path(path).parts
    for anchor in ("site-packages", "operator"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1 :])
    return "/".join(parts[-2:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path, help="a py-spy raw profile (one `stack count` per line)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    print(summarize(args.profile, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
