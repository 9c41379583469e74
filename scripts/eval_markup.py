"""How many of a web icon set's glyphs a page's markup names, as the extension and the audit send it: each glyph of
the sets in the icon cache written the way that set's own documentation puts it in a page, through
``server.describe.markup.markup_name``.

    python scripts/eval_markup.py --icons ~/.cache/alt-text/icons

Per set: the glyphs, the share named (a meaning or a brand the vocabulary knows), and the same share for the glyphs
of the meanings the web's icon-only controls mostly show (``COMMON``: search, menu, close, home ...: the issue's
list). A named glyph is named as its file name says (the markup is the author's choice of glyph, not a guess), so
there is no "wrong" to count here; what the pixels alone would say is the meaning head's table in the model card.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.describe.markup import markup_name  # noqa: E402
from gather_icon_set import npm_files  # noqa: E402  (beside this script: where each set keeps its SVGs)

# family -> how a page names one of its glyphs (the set's documented markup), for a file's stem
MARKUP = {
    "fontawesome": lambda style, name: {"class": f"fa-{style or 'solid'} fa-{name}"},
    "bootstrap": lambda style, name: {"class": f"bi bi-{name}"},
    "mdi": lambda style, name: {"class": f"mdi mdi-{name}"},
    "material": lambda style, name: {"class": "material-icons", "ligature": name},
    "lucide": lambda style, name: {"class": f"lucide lucide-{name}"},
    "feather": lambda style, name: {"class": f"feather feather-{name}"},
    "octicons": lambda style, name: {"class": f"octicon octicon-{name.rsplit('-', 1)[0]}"},
    "cssgg": lambda style, name: {"class": f"gg-{name}"},
    "simple-icons": lambda style, name: {"class": f"si si-{name}"},
}
COMMON = ("search", "menu", "close", "home", "account", "cart", "settings", "share", "download", "upload", "edit",
          "delete", "add", "play", "pause", "next", "previous", "favourite", "star", "mail", "phone", "calendar",
          "location", "info", "warning", "help", "lock", "notifications", "filter", "sort", "refresh", "print", "save",
          "copy", "link", "external-link", "camera", "image", "video", "microphone", "volume", "mute", "grid", "list",
          "arrow-left", "arrow-right", "arrow-up", "arrow-down", "check", "like", "comment", "bookmark", "clock",
          "language", "login", "logout", "fullscreen", "more-horizontal", "more-vertical")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--icons", type=Path, default=Path.home() / ".cache" / "alt-text" / "icons")
    ap.add_argument("--out", type=Path, default=None, help="write the table as JSON here too")
    args = ap.parse_args(argv)
    modules = args.icons / "npm" / "node_modules"
    if not modules.is_dir():
        ap.error(f"{modules} is missing: run scripts/gather_icon_set.py --out {args.icons} first")
    table = {}
    for family, write in MARKUP.items():
        files = npm_files(modules, family)
        if family == "fontawesome":  # fa-solid / fa-regular / fa-brands, as the folder says
            glyphs = [(sub.split("/")[-1], path.stem) for path, sub in files]
        else:
            glyphs = [("", path.stem) for path, _ in files]
        if not glyphs:
            print(f"{family:14s} not in the cache")
            continue
        named = [markup_name(write(style, name)) for style, name in glyphs]
        common = [n for n in named if n is not None and n.meaning.id in COMMON and not n.meaning.brand]
        table[family] = {"glyphs": len(glyphs), "named": round(sum(n is not None for n in named) / len(glyphs), 3),
                         "common_meanings_drawn": len({n.meaning.id for n in common})}
        print(f"{family:14s} {len(glyphs):6d} glyphs, {table[family]['named']:.1%} named; "
              f"{table[family]['common_meanings_drawn']} of the {len(COMMON)} common meanings found")
    if args.out:
        args.out.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
