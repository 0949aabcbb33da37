"""The ``tunesmith`` command line, above the packages it drives.

:mod:`tunesmith.cli` parses the sub-commands of the design notes (compose, converse, render,
validate, ui, finetune, eval) and turns errors into one-line messages and exit codes;
:mod:`tunesmith.commands` holds the runs behind ``compose`` and ``converse``. The command line
depends on :mod:`agent` (the composer), :mod:`ui` (the app) and :mod:`finetune` (training and
the benchmark); none of them depends on it, so :mod:`agent` stands alone.
"""
