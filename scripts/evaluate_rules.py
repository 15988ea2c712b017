"""Every θ-free rule of hsam_core.select on the settled grids of the results store, against the
oracle (the best setting in hindsight, which looks at θ).

    python scripts/evaluate_rules.py

Prints one row per (grid, rule) — the pick, its median θ error, the oracle's, their ratio and
the pick's stability over seed resamples — then, per method family, the pre-registered
criterion (select.criterion): the rule it chooses first. Studies or configurations the store
lacks are named, not skipped silently.
"""

import pandas as pd

from hsam_core import report, select, settings, studies

settings.configure(quick=False)


def main() -> None:
    grids, contexts, missing = report.rule_grids(studies.SETTLED)
    for study, labels in missing.items():
        print(f"{study}: not in the store: {labels}")
    table = select.evaluate(grids, contexts)
    with pd.option_context("display.width", 220, "display.max_rows", 500):
        print(table.to_string(float_format="{:.3g}".format))
        for family in dict.fromkeys(name.split(" / ")[-1] for name in grids):
            ranked = select.criterion(table, family)
            print(f"\n{family}: the criterion chooses {ranked.index[0]}")
            print(ranked.to_string(float_format="{:.3g}".format))


if __name__ == "__main__":
    main()
