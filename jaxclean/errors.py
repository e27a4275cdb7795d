"""The user's errors, a leaf every module may import.

An `InputError` is the user's to fix (a bad setting, a missing file, an
unreadable image): the command line prints its one-line message and exits
with status 2. Anything else is a bug and keeps its traceback. A leaf, so that
`checks`, which imports the modules whose settings it checks, is imported by none.
"""


class InputError(ValueError):
  """Bad input: a setting, a data set or a file the run cannot use."""


class MissingFile(InputError, FileNotFoundError):
  """An input path that does not exist."""
