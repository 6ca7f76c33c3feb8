from tests.comparisons.fixtures import formats  # noqa: F401 (fixtures)
from tests.exports.fixtures import completed, engine_folder  # noqa: F401 (fixtures)
