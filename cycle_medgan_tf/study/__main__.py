"""``python -m cycle_medgan_tf.study``: the command ``cycle_medgan_tf/commands/study.py``."""

if __name__ == "__main__":
    from cycle_medgan_tf.commands.study import run
    run()
