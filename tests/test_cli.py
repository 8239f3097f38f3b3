"""The command line: quiet by default, a summary table at the end, details with -v; notebook copies."""

from evallib.cli import main
from evallib.render import notebook_dir


def test_notebooks_command_copies_the_packaged_notebooks(tmp_path, capsys):
    dest = tmp_path / "nb"
    assert main(["notebooks", str(dest)]) == 0
    for name in ("report.ipynb", "compare.ipynb"):
        assert (dest / name).read_bytes() == (notebook_dir() / name).read_bytes()
    assert capsys.readouterr().out.split().count("written") == 2
    # an edited copy is kept unless --force
    (dest / "report.ipynb").write_text("{}")
    assert main(["notebooks", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "kept (edited)" in out and "up to date" in out and (dest / "report.ipynb").read_text() == "{}"
    assert main(["notebooks", str(dest), "--force"]) == 0
    assert (dest / "report.ipynb").read_bytes() == (notebook_dir() / "report.ipynb").read_bytes()
