"""Print a database URL as libpq's PG* variables for the shell to eval (deploy/pg-*.sh), so
that pg_dump and pg_restore never see the password on their command line."""

import shlex
import sys

from sqlalchemy.engine import make_url

url = make_url(sys.argv[1])
pairs = {
    "PGHOST": url.host or "127.0.0.1",
    "PGPORT": str(url.port or 5432),
    "PGUSER": url.username or "",
    "PGPASSWORD": url.password or "",
    "PGDATABASE": url.database or "",
}
print("\n".join(f"export {k}={shlex.quote(str(v))}" for k, v in pairs.items() if v))
