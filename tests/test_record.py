"""course_tools.record keeps what chosen cells printed, with the run's times, and refuses unknown cells."""

import nbformat
import pytest
from nbformat import v4

from course_tools import record


def test_record_keeps_the_named_cells_output(tmp_path):
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("# t"), v4.new_code_cell("x = 6 * 7"),
                                v4.new_code_cell("print('answer', x)"), v4.new_code_cell("x")])
    nb.cells[2]["id"], nb.cells[3]["id"] = "printed", "shown"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "lesson.ipynb"
    nbformat.write(nb, path)
    text = record.record(path, ["printed", "shown"], cold=True, cell_timeout=120)
    assert "## cell `printed`" in text and "answer 42" in text
    assert "## cell `shown`" in text and "\n42\n" in text
    assert "from an empty model cache" in text
    with pytest.raises(ValueError, match="no cells"):
        record.record(path, ["nope"], cold=False)
