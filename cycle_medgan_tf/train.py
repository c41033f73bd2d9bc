"""``python -m cycle_medgan_tf.train``: the training command, ``cycle_medgan_tf/commands/train.py`` (the trainer
of a model: ``catalogue.trainer_class``)."""

if __name__ == "__main__":
    from cycle_medgan_tf.commands.train import run
    run()
