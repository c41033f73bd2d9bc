"""``python -m cycle_medgan_tf.pretrain_bigan``: the BiGAN pre-training command,
``cycle_medgan_tf/commands/pretrain_bigan.py``."""

if __name__ == "__main__":
    from cycle_medgan_tf.commands.pretrain_bigan import run
    run()
