#!/usr/bin/env bash
# Re-execute the chapter notebooks in FULL mode and save their outputs in place.
#
# The book shows the committed outputs (execute_notebooks: "off" in _config.yml), so run this
# after changing a chapter or hsam_core, then commit the notebooks. Every chapter notebook
# listed in _toc.yml is run top to bottom, one at a time, in table-of-contents order; execution
# counts come out as 1..N, which tests/test_book.py checks. Runs on a GPU when there is one.
# It is `python -m hsam_core reproduce` without the sweep that fills the results store first
# (the chapters read the store; see book/reproducing.md).
#
#   scripts/refresh_outputs.sh                      # every chapter
#   scripts/refresh_outputs.sh 02_failure_case ...  # only these (names or paths)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HSAM_QUICK=0 # full mode, whatever the calling shell has set
exec python -m hsam_core reproduce --no-sweep ${1:+--chapters "$@"}
