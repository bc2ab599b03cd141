"""The daily commands behind the Makefile: each target's variables checked, the scope
resolved, the lock held, then the work (ADR-071, docs/make-targets.md).

``python -m anklume.ops TARGET`` runs a target; ``--check TARGET`` only checks its
variables (for the targets still written in shell); ``help`` prints the grouped help.
makevars and targets use the standard library only: help and the checks run before the
virtualenv exists.
"""
