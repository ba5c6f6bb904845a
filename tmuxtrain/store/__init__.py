"""SQLite storage: jobs (`jobs`), what accumulates beside them (`history`), the schema and
its migrations (`schema`), and the one definition of rows and job JSON (`codec`). The only
package with SQL."""

from tmuxtrain.store.codec import iso, job_json, runtime_s
from tmuxtrain.store.faults import FATAL, SchemaError, StorageError, classify
from tmuxtrain.store.jobs import Store
from tmuxtrain.store.schema import MIGRATIONS

__all__ = [
    "FATAL",
    "MIGRATIONS",
    "SchemaError",
    "StorageError",
    "Store",
    "classify",
    "iso",
    "job_json",
    "runtime_s",
]
