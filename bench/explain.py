"""EXPLAIN (ANALYZE, BUFFERS) of the SQL the server sends for a search, on a loaded PostgreSQL database.

    .venv/bin/python -m bench.explain --database-url postgresql+psycopg://postgres@127.0.0.1/db \\
        'Observation?patient=123&code=http://loinc.org|8302-2&_sort=-date&_count=10'

The statement is built by the server's own compiler (fhir_server/store/query.py) for the first page, as a
search request would build it, and explained with its parameters bound. `--summary` prints only the plan's
shape (node types and the indexes they use) and the execution time.
"""

from __future__ import annotations

import argparse
import json
from urllib.parse import parse_qsl

from fhir_server.search.parse import parse_query
from fhir_server.store import query as sql
from fhir_server.store.db import make_engine
from fhir_server.store.repository import SqlRepository, _now


def statement(search: str, count: int = 50):
    path, _, query_string = search.partition("?")
    params = parse_qsl(query_string, keep_blank_values=True)
    resource_type = path or None
    query = parse_query(resource_type, params, strict=True)
    for name, value in params:
        if name == "_count":
            count = int(value)
    return query, sql.select_page(query, _now(), count + 1, None, False, query.total != "none")


def explain(database_url: str, search: str) -> dict:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        query, stmt = statement(search)
        query = SqlRepository(conn)._expand_value_sets(query)
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + str(compiled),
                                    compiled.params).scalar_one()
    engine.dispose()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]


def shape(node: dict, depth: int = 0) -> list[str]:
    """One line per plan node: its type, the relation or index it reads, its rows and time."""
    label = node["Node Type"]
    for key in ("Index Name", "Relation Name"):
        if key in node:
            label += f" {node[key]}"
            break
    line = f"{'  ' * depth}{label} (rows {node.get('Actual Rows')}, loops {node.get('Actual Loops')}, " \
           f"{node.get('Actual Total Time', 0):.2f} ms)"
    return [line] + [x for child in node.get("Plans", []) for x in shape(child, depth + 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--summary", action="store_true", help="plan shape and execution time only")
    parser.add_argument("searches", nargs="+", help="Type?params, as after [base]/")
    args = parser.parse_args(argv)
    for search in args.searches:
        result = explain(args.database_url, search)
        print(f"== {search}  ({result['Execution Time']:.2f} ms)")
        if args.summary:
            print("\n".join(shape(result["Plan"])))
        else:
            print(json.dumps(result["Plan"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
