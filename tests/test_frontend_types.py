"""The front end's API types are generated from the API's own schema; this fails when they drift apart.

frontend/src/api/schema.d.ts is generated, and frontend/src/api/types.ts gives its types the names the app uses
(aliases, no copies), so with schema.d.ts current, vue-tsc shows what an API change breaks in the front end.

After changing the API, with DATABASE_URL on PostgreSQL (integer ranges in the schema follow the database):
python manage.py spectacular --file schema.yaml, then in frontend/: npm run types, and fix what vue-tsc finds.
"""

import subprocess
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

FRONTEND = Path(settings.BASE_DIR) / "frontend"
GENERATOR = FRONTEND / "node_modules" / ".bin" / "openapi-typescript"


def test_the_front_ends_api_types_are_those_of_the_current_schema(tmp_path):
    assert GENERATOR.exists(), "the front end's packages are missing: bin/frontend installs them (npm ci)"
    schema, types = tmp_path / "schema.yaml", tmp_path / "schema.d.ts"
    call_command("spectacular", "--file", str(schema))
    subprocess.run([str(GENERATOR), str(schema), "-o", str(types)], cwd=FRONTEND, check=True, capture_output=True)
    committed = (FRONTEND / "src" / "api" / "schema.d.ts").read_text()
    assert types.read_text() == committed, (
        "frontend/src/api/schema.d.ts is not the current API's: run `python manage.py spectacular --file "
        "schema.yaml` (on PostgreSQL) and `npm run types` in frontend/, and fix what the new types break"
    )
