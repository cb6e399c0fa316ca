"""Names typed by users never reach the file system (RELIABILITY.md 25): a letter or layout
named like a path is only a name, and templates cannot include, import or extend files."""

from __future__ import annotations

import pytest

from campaigns.db import Database
from campaigns.errors import TemplateError
from campaigns.letters import authoring, rendering
from campaigns.models import LetterCategory, LetterKind

PATHS = ["../../../../etc/passwd", "/etc/passwd", "templates/admin/base.html", "letters/welcome"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("tag", ["include", "import", "extends", "from"])
def test_a_template_cannot_pull_in_a_file(path: str, tag: str) -> None:
    source = {
        "include": f"{{% include '{path}' %}}",
        "import": f"{{% import '{path}' as m %}}",
        "extends": f"{{% extends '{path}' %}}",
        "from": f"{{% from '{path}' import x %}}",
    }[tag]
    with pytest.raises(TemplateError):
        rendering.render_version(subject="Hi", html=f"<p>{source}</p>", text=None, context={})


def test_a_letter_and_a_layout_named_like_paths_are_only_names(db: Database) -> None:
    with db.unit_of_work() as s:
        layout = authoring.create_layout(s, "../../etc/passwd", "<div>{{ body }}</div>")
        letter = authoring.create_letter(s, "/etc/passwd", kind=LetterKind.OTHER,
                                         category=LetterCategory.SERVICE)  # fmt: skip
        version = authoring.add_version(s, letter.id, subject="Hello", html="<p>Hello</p>",
                                        layout_id=layout.id)  # fmt: skip
        assert "root:" not in version.compiled_html
        assert "<div>" in version.compiled_html and "Hello" in version.compiled_html
