from tests.exports.fixtures import engine_folder  # noqa: F401 (fixtures)
