"""SQLite storage: jobs (`jobs`), what accumulates beside them (`history`), the schema and
its migrations (`schema`), and the one definition of rows and job JSON (`codec`). The only
package with SQL."""

from tmuxtrain.store.codec import iso, job_json, runtime_s
from tmuxtrain.store.jobs import Store
from tmuxtrain.store.schema import MIGRATIONS, SchemaError

__all__ = ["MIGRATIONS", "SchemaError", "Store", "iso", "job_json", "runtime_s"]
