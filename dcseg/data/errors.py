class DataError(ValueError):
    """Bad input data. The message names the case and file and says what was expected."""
