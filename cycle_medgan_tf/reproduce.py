"""``python -m cycle_medgan_tf.reproduce``: the command ``cycle_medgan_tf/commands/reproduce.py``."""

if __name__ == "__main__":
    from cycle_medgan_tf.commands.reproduce import run
    run()
