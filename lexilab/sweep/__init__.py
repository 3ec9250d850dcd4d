"""Optuna sweeps of experiment specs (``search:``): the space, the driver, storage, reports.

- :mod:`lexilab.sweep.search` — the ``search:`` block, validated over the whole space;
- :mod:`lexilab.sweep.space` — parameters, task-weight parametrisations, corners;
- :mod:`lexilab.sweep.objectives` — validation objectives and their values in run directories;
- :mod:`lexilab.sweep.methods` — samplers and pruners;
- :mod:`lexilab.sweep.storage` — journal file, RDB (PostgreSQL with heartbeats);
- :mod:`lexilab.sweep.driver` — ask → dispatch runs → tell, restartable;
- :mod:`lexilab.sweep.hook` — the run-process side: report evaluations, prune, heartbeat;
- :mod:`lexilab.sweep.study`, :mod:`lexilab.sweep.report`, :mod:`lexilab.sweep.export` — reading it back.
"""
