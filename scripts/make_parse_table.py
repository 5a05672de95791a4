"""Write diffcli/language/expr_table.json, the LALR table of grammars/expr.lark, after editing the grammar
or changing the version of Lark (tests/test_parse_table.py says when it is stale)."""

import json
from pathlib import Path

from diffcli.language import parser

grammar = (Path(__file__).resolve().parent.parent / "grammars" / "expr.lark").read_text(encoding="utf-8")
parser.TABLE_PATH.write_text(json.dumps(parser.table_data(grammar), separators=(",", ":")) + "\n",
                             encoding="utf-8")
print(f"wrote {parser.TABLE_PATH}")
