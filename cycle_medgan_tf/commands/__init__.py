"""The command-line programs, apart from the library: each module defines its flags in ``define_flags()`` (called
by ``run()``, never at import) and a ``main(argv)``; ``python -m cycle_medgan_tf.commands.NAME`` or the old path
``python -m cycle_medgan_tf.NAME`` (a shim) runs it. Library modules never import this package."""
