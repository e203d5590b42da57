"""Line and branch coverage of pywebtransport/h3 reached by fuzz corpora (coverage.py).

    python fuzz/coverage_report.py [CORPUS_DIR ...]     # default: fuzz/corpus/h3

Replays every file through ``h3_target.run_one`` and prints coverage.py's report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import coverage

HERE = Path(__file__).resolve().parent


def main() -> None:
    dirs = [Path(a) for a in sys.argv[1:]] or [HERE / "corpus" / "h3"]
    cov = coverage.Coverage(branch=True, include=[str(HERE.parent / "pywebtransport" / "h3" / "*.py")])
    cov.start()
    sys.path.insert(0, str(HERE))
    from h3_target import run_one

    count = 0
    for directory in dirs:
        for path in sorted(directory.iterdir()):
            if path.is_file():
                run_one(path.read_bytes())
                count += 1
    cov.stop()
    print(f"{count} inputs replayed from {', '.join(map(str, dirs))}")
    cov.report(show_missing=False)


if __name__ == "__main__":
    main()
