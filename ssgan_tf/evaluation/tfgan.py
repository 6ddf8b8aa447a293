"""TF-GAN's metric functions, loaded without `import tensorflow_gan`.

`tensorflow_gan/__init__.py` imports its estimator code, which fails on TF >= 2.16
(`tf.estimator` is gone). Registering its packages as bare modules lets Python import
the `python/eval` submodules alone; they need only TF, tensorflow-probability (which in
turn needs tf_keras when Keras 3 is installed) and tensorflow-hub.
"""

import functools
import importlib
import importlib.util
import os
import sys
import types

_PACKAGES = (("tensorflow_gan", ""), ("tensorflow_gan.python", "python"),
             ("tensorflow_gan.python.eval", os.path.join("python", "eval")))


@functools.cache
def classifier_metrics():
  """TF-GAN's `classifier_metrics` module: FID, classifier score and KID functions."""
  spec = importlib.util.find_spec("tensorflow_gan")
  if spec is None:
    raise ImportError("tensorflow-gan is not installed; pip install -r requirements.txt.")
  root = list(spec.submodule_search_locations)[0]
  for name, subdir in _PACKAGES:
    if name not in sys.modules:
      package = types.ModuleType(name)
      package.__path__ = [os.path.join(root, subdir)]
      sys.modules[name] = package
  return importlib.import_module("tensorflow_gan.python.eval.classifier_metrics")
