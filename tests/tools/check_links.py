"""Every relative link in the README and docs/ resolves inside the repository: the file
exists and, for an anchor, the target has that heading. `--self-test` plants a broken one."""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def slug(heading: str) -> str:
    heading = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return heading.replace(" ", "-")


def anchors(path: Path) -> set:
    found, fenced = set(), False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def broken(files: dict) -> list:
    problems = []
    for path, text in files.items():
        fenced = False
        for number, line in enumerate(text.splitlines(), 1):
            if line.startswith("```"):
                fenced = not fenced
            if fenced:
                continue
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"^[a-z]+:", target):
                    continue
                file, _, anchor = target.partition("#")
                resolved = (path.parent / file).resolve() if file else path
                if not resolved.exists():
                    problems.append(f"{path.relative_to(ROOT)}:{number}: {target}: no such file")
                elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                    problems.append(f"{path.relative_to(ROOT)}:{number}: {target}: no such heading")
    return problems


def main() -> int:
    files = {p: p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
    if sys.argv[1:] == ["--self-test"]:
        readme = ROOT / "README.md"
        planted = dict(files)
        planted[readme] = files[readme] + "\n[x](docs/no-such.md) [y](#no-such-heading)\n"
        if len(broken(planted)) != len(broken(files)) + 2:
            print("links self-test: a planted broken link was not caught")
            return 1
        print("links self-test: both planted broken links caught")
        return 0
    problems = broken(files)
    for p in problems:
        print(f"links: {p}")
    if not problems:
        print(f"links: every link in {len(files)} documents resolves")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
