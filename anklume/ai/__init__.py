"""LLM-assisted test and development loop: ``make ai-test`` and ``make ai-develop``.

One file per job: ``config`` (anklume.conf.yml + environment), ``redact`` (secrets out
of every text), ``session`` (the session log), ``testrun`` (which tests, run and captured),
``context`` (what the backend is told), ``patch`` (a reply checked before anything),
``gitops`` and ``github`` (branch, commit, push, pull request), ``backends`` (one
interface: context in, unified diff out) and ``loop`` (the tries).
"""
