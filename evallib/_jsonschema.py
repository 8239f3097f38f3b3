"""jsonschema without the import cost of a format checker evallib never uses.

``import jsonschema`` imports every optional format-checker library it finds. One of them,
``rfc3987_syntax`` (installed with Jupyter's ``jsonschema[format-nongpl]``), builds about 35 Earley
parsers when imported: 2.4 s of CPU on this project's machines, paid by every CLI call, notebook kernel
and worker process (python-jsonschema/jsonschema#1428). evallib validates params without format checkers,
so it imports jsonschema with that one library hidden. Other code in the process can still import the
library afterwards; jsonschema then only lacks its "iri" and "iri-reference" format checks.
"""

import sys

if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
    import jsonschema
else:
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # an import of it raises ImportError
    try:
        import jsonschema
    finally:
        del sys.modules["rfc3987_syntax"]

__all__ = ["jsonschema"]
