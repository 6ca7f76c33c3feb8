"""Django-Q2 task functions, one module per job kind, all run through `runner.run`."""
