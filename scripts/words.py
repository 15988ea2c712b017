"""Words of prose per chapter (issue 34's count): markdown cells of the notebooks and the .md
pages of ``book/``, display math (``$$ … $$``) and code fences excluded.

    python scripts/words.py [ROOT]
"""

import glob
import json
import re
import sys


def words(text: str) -> int:
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    return len(text.split())


def main(root: str = ".") -> None:
    total = 0
    for path in sorted(glob.glob(f"{root}/book/*.ipynb") + glob.glob(f"{root}/book/*.md")):
        if path.endswith(".ipynb"):
            cells = json.load(open(path, encoding="utf-8"))["cells"]
            n = sum(words("".join(c["source"])) for c in cells if c["cell_type"] == "markdown")
        else:
            n = words(open(path, encoding="utf-8").read())
        total += n
        print(f"{path.split('/')[-1]:40s}{n:6d}")
    print(f"{'total':40s}{total:6d}")


if __name__ == "__main__":
    main(*sys.argv[1:])
