from vgcourse import results
from vgcourse.paths import REPO_ROOT


def test_readme_results_table_matches_results_files():
    readme = (REPO_ROOT / "README.md").read_text()
    start, end = readme.index("<!-- results-table -->"), readme.index("<!-- /results-table -->")
    assert readme[start:end].split("\n", 1)[1].strip() == results.markdown_table().strip(), \
        "regenerate the README's results table with `python3 -m vgcourse.results`"


def test_readme_gives_the_two_commands():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "python3 -m vgcourse build" in readme and "python3 -m vgcourse test" in readme
    assert "python3 -m vgcourse test" in (REPO_ROOT / ".ci" / "run").read_text()
