from tests.exports.fixtures import completed, engine_folder  # noqa: F401 (fixtures)
