"""The fidelity study (docs/FIDELITY.md): the plan (``plan.py``), its stores (``stores.py``), execution of one run
(``execute.py``), the committed per-run JSONs (``records.py``), the sittings (``runner.py``) and the rendering from
the JSONs alone (``summary.py``, ``choice.py``, ``tables.py``, ``plots.py``, ``render.py``). The command:
``python -m cycle_medgan_tf.study`` (``cycle_medgan_tf/commands/study.py``)."""
