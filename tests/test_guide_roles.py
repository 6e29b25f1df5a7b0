"""docs/guide/team-admin.md's table of built-in roles is the one rbac/defaults.py defines.

On a mismatch the failure prints the table to paste between the markers.
"""

from pathlib import Path

from containers import maxima
from rbac import catalog
from rbac.defaults import DEFAULT_MAX_LIMITS, DEFAULT_ROLES

PAGE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "team-admin.md"
BEGIN, END = "<!-- roles-table:begin -->", "<!-- roles-table:end -->"


def _limits(values: dict) -> str:
    shown = []
    for key, value in values.items():
        if key in ("memory", "memory_swap"):
            shown.append(f"{key} {maxima._size(value)}")
        elif key == "cpus":
            shown.append(f"cpus {maxima._cpus(value)}")
        else:
            shown.append(f"{key} {value}")
    return ", ".join(shown) or "none"


def roles_table() -> str:
    """The generated Markdown: one column per built-in role, one row per permission."""
    names = list(DEFAULT_ROLES)
    lines = [
        "| permission | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for code in catalog.ALL_PERMISSIONS:
        marks = [
            "yes" if catalog.holds(DEFAULT_ROLES[n]["permissions"], code) else "" for n in names
        ]
        flag = " (dangerous)" if code in catalog.DANGEROUS_PERMISSIONS else ""
        lines.append(f"| `{code}`{flag} | " + " | ".join(marks) + " |")
    lines.append("")
    lines.append("| role | description | bind paths | default limits | maxima |")
    lines.append("|---|---|---|---|---|")
    for name, role in DEFAULT_ROLES.items():
        paths = ", ".join(f"`{p}`" for p in role["bind_paths"]) or "none"
        lines.append(
            f"| `{name}` | {role['description']} | {paths} | {_limits(role['default_limits'])} | "
            f"{_limits(DEFAULT_MAX_LIMITS.get(name, {}))} |"
        )
    return "\n".join(lines)


def test_roles_table_matches_the_definitions():
    text = PAGE.read_text()
    assert BEGIN in text and END in text, f"{PAGE} lacks the roles-table markers"
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shown == roles_table(), (
        f"the built-in roles changed; put this between the markers in {PAGE}:\n\n" + roles_table()
    )
