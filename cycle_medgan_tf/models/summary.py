"""``python -m cycle_medgan_tf.models.summary``: the parameter-count command, ``cycle_medgan_tf/commands/summary.py``
(the counting itself: ``models.registry.parameter_summary``)."""

if __name__ == "__main__":
    from cycle_medgan_tf.commands.summary import run
    run()
