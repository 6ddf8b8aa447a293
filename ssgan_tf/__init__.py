"""ssgan_tf: SS-GAN (Chen et al., CVPR 2019) in TensorFlow 2 / Keras 3.

Stages, in data-flow order: data -> rotation -> nets -> losses -> ssgan (train_step
under a tf.distribute strategy) -> workdir (checkpoints, layout) -> callbacks ->
evaluation -> export_lib. train_lib is the training job over them (it runs the
evaluation periodically, so it sits above it); errors and precision serve every stage;
main holds the flags.
"""

__version__ = "0.1.0"
