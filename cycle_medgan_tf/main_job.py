"""``python -m cycle_medgan_tf.main_job``: the command ``cycle_medgan_tf/commands/main_job.py``."""

if __name__ == "__main__":
    from cycle_medgan_tf.commands.main_job import run
    run()
