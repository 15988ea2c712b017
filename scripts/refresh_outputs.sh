#!/usr/bin/env bash
# Re-execute the chapter notebooks in FULL mode and save their outputs in place.
#
# The book shows the committed outputs (execute_notebooks: "off" in _config.yml), so run this
# after changing a chapter or hsam_core, then commit the notebooks. Every chapter notebook
# listed in _toc.yml is run top to bottom, one at a time, in table-of-contents order; execution
# counts come out as 1..N, which tests/test_book.py checks. Thread settings (OMP_NUM_THREADS,
# torch.set_num_threads) are left to the notebooks. Runs on a GPU when there is one.
#
#   scripts/refresh_outputs.sh                      # every chapter
#   scripts/refresh_outputs.sh 02_failure_case ...  # only these (names or paths)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export HSAM_QUICK=0 # full mode, whatever the calling shell has set

if ! python -c "import nbconvert" 2>/dev/null; then
    echo "refresh_outputs.sh needs nbconvert: python -m pip install nbconvert" >&2
    exit 1
fi

listed=$(python - "$@" <<'PY'
import sys
from pathlib import Path

import yaml

toc = yaml.safe_load(Path("_toc.yml").read_text(encoding="utf-8"))
entries = [toc["root"]]

def walk(items):
    for item in items or []:
        if "file" in item:
            entries.append(item["file"])
        for key in ("parts", "chapters", "sections"):
            walk(item.get(key))

for key in ("parts", "chapters"):
    walk(toc.get(key))
notebooks = [f"{e}.ipynb" for e in entries if Path(f"{e}.ipynb").is_file()]
wanted = {Path(a).stem for a in sys.argv[1:]}
unknown = wanted - {Path(n).stem for n in notebooks}
if unknown:
    sys.exit(f"not a chapter notebook in _toc.yml: {', '.join(sorted(unknown))}")
print("\n".join(n for n in notebooks if not wanted or Path(n).stem in wanted))
PY
)
mapfile -t notebooks <<<"$listed"

if [ -z "$listed" ]; then
    echo "no chapter notebooks listed in _toc.yml" >&2
    exit 1
fi

for nb in "${notebooks[@]}"; do
    echo "=== $nb (full mode)"
    start=$SECONDS
    jupyter nbconvert --to notebook --execute --inplace \
        --ExecutePreprocessor.timeout=-1 --ExecutePreprocessor.kernel_name=python3 \
        --ExecutePreprocessor.record_timing=False "$nb"
    echo "=== $nb done in $((SECONDS - start)) s"
done
echo "Now check and commit: python -m pytest tests/test_book.py && git add book/*.ipynb"
