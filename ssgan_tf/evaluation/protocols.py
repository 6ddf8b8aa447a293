"""Per-dataset evaluation protocol: how many images, which split, how many fake sets.

compare_gan (google/compare_gan @ 19922d3, v3, the SS-GAN code) evaluates every
dataset with `eval_test_samples` real images of its eval split against as many
generated ones (`eval_gan_lib.py:113-117`), and repeats the generated side
`--num_eval_averaging_runs` = 3 times (`main.py:59-61`, passed at `main.py:126`): three
independent fake sets (one noise stream seeded 42, `eval_gan_lib.py:112`), each
compared with the same real set, reported as mean, std (NumPy's, ddof 0) and the list
(`eval_gan_lib.py:167-207`). A protocol here states those numbers for our
`data.get_source` names; every split is our "test", which data.py maps to compare_gan's
eval split (ImageNet: TFDS validation; LSUN: train[99%:]; CelebA-HQ: train[27000:]).

| dataset       | images | compare_gan source                                          |
|---------------|--------|-------------------------------------------------------------|
| cifar10       | 10,000 | datasets.py:370 (TFDS test)                                 |
| celeb_a       | 10,000 | datasets.py:384 (TFDS test, 19,962 images)                  |
| lsun_bedroom  | 30,000 | datasets.py:409, split train 99/1 % at :412-418 (*)         |
| imagenet64/128| 50,000 | datasets.py:512, validation split at :514                   |
| celeba_hq128  |  3,000 | v2 branch src/params.py:402, last 10 % shards datasets.py:236-241 |
| mnist (ours)  | all 500| compare_gan: 10,000 TFDS test (datasets.py:342); ours has 500 |
| folder, other | min(10,000, split size) | compare_gan's usual 10k, capped        |

(*) compare_gan's split is legacy TFDS' `subsplit([99, 1])`, which took every 100th
record rather than the last 1 % as one block: as many images, not the same ones.
CelebA-HQ is not in v3 (compare_gan issue #44); its 3k comes from the v2 code that
Kurach et al.'s study used, whose 27k / 3k split data.py reproduces.
"""

import dataclasses

from ssgan_tf import errors

FOLDER_MAX_SAMPLES = 10_000
NUM_FAKE_SETS = 3  # compare_gan main.py:59-61.


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How a dataset is evaluated.

  Attributes:
    num_samples: real images (the first ones of `split`) and images per fake set.
    split: the data.py split of the real images ("test").
    num_fake_sets: independent generated sets, each scored against the same real set;
      report their mean and std.
  """
  num_samples: int
  split: str
  num_fake_sets: int


# num_samples None: the whole split (its size is known without reading it).
_TABLE = {
    "cifar10": 10_000,
    "celeb_a": 10_000,
    "lsun_bedroom": 30_000,
    "imagenet64": 50_000,
    "imagenet128": 50_000,
    "celeba_hq128": 3_000,
    "mnist": None,
}


def default_protocol(source_name, num_test_examples):
  """compare_gan's protocol for a `data.get_source` dataset.

  Args:
    source_name: `ImageSource.name`: "cifar10", ..., "mnist", or "folder:<path>" (any
      name not in the table gets the folder rule).
    num_test_examples: size of the source's "test" split (`source.num_examples("test")`),
      or None where unknown without reading it.

  Returns:
    A `Protocol`; num_samples >= 2.

  Raises:
    DataError: the split is smaller than the protocol's count (a partly prepared data
      set would silently change the metric), or too small for a covariance.
    ConfigError: num_test_examples is not None or a non-negative integer.
  """
  if num_test_examples is not None:
    errors.check_range("num_test_examples", num_test_examples, minimum=0, integer=True)
  if source_name in _TABLE:
    num = _TABLE[source_name]
    if num is None:
      if num_test_examples is None:
        raise errors.ConfigError(
            f"the protocol of {source_name} uses its whole test split; pass its size "
            "(source.num_examples('test')).")
      num = num_test_examples
    elif num_test_examples is not None and num_test_examples < num:
      raise errors.DataError(
          f"the test split of {source_name} has {num_test_examples} images but "
          f"compare_gan's protocol uses {num}; prepare the whole split, or set "
          "evaluation.num_samples (the metric then no longer compares with the paper's).")
  else:
    num = min(FOLDER_MAX_SAMPLES, FOLDER_MAX_SAMPLES if num_test_examples is None
              else num_test_examples)
  if num < 2:
    raise errors.DataError(
        f"the test split of {source_name} has {num} images; FID needs at least 2 "
        "(a covariance); add images.")
  return Protocol(num_samples=num, split="test", num_fake_sets=NUM_FAKE_SETS)
