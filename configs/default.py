"""Digits (scikit-learn, embedded) with 30 % uniform label noise and a small MLP.

About a minute on a laptop CPU:
  python -m jaxclean.main --config=configs/default.py --workdir=runs/default
Override anything, e.g.:
  python -m jaxclean.main --config=configs/default.py --workdir=runs/fmnist \
      --config.data.name=fashion_mnist --config.model.name=cnn \
      --config.noise.kind=asymmetric --config.noise.rate=0.3 --config.num_epochs=15
"""

import ml_collections
from ml_collections import config_dict


def get_config():
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = dict(
      # digits | fashion_mnist | cifar10 | tfds:<name> | npz:<path> | folder:<path>
      # | arrayrecord:<dir> (python -m jaxclean.data.convert) | npy:<dir> | hf:<name or dir>
      # (Hugging Face datasets); the last three stream.
      name="digits",
      data_dir="",  # '' = the source's default location
      cache_dir="",  # decoded-image cache ('' = ~/.cache/jaxclean)
      train_split="train",  # the split whose labels are ranked
      eval_split="test",
      labels_file="",  # .npy of integer labels replacing the training labels
      # A decisions file (the report's review export, jaxclean.decide): index, decision
      # (keep | relabel | drop), label; applied after labels_file and train_size.
      decisions_file="",
      cifar10_labels="clean",  # clean | aggre | worst | random1 | random2 | random3 (CIFAR-10N)
      train_size=0,  # keep the first n training examples (0 = all)
      eval_size=0,
      image_key="",  # hf: the image column ('' = the Image feature)
      label_key="",  # hf: the label column ('' = the ClassLabel feature)
  )
  c.noise = dict(kind="uniform", rate=0.3, seed=0, pairs="")  # kind: none | uniform | asymmetric
  # auto: the MLP for vectors and images under 16x16, the small CNN above (models.auto).
  # ... or import:<module>:<name>, a flax.linen Module (class or instance) returning logits.
  c.model = dict(name="auto")  # auto | mlp | cnn | resnet32 | preact_resnet18 (+ options)
  # A pretrained backbone (pip install 'jaxclean[pretrained]'; jaxclean/backbones.py lists
  # the names and what each downloads), or import:<module>:<name>, your own jittable
  # function from a batch of images (B, H, W, C) to features (B, D).
  # frozen: embed every example once (cached under data.cache_dir/embeddings) and train
  # the model (auto: the MLP) on the features; finetune: backbone and a linear head train
  # together at lr_scale x optimizer.lr, of the backbone only variables whose path matches
  # the regex `trainable` ('' = all). image_size: 0 = the preset's. A model given with
  # variables= (trained weights) also trains at lr_scale x optimizer.lr, all of it.
  # lr_scale 0.05 (experiments/results/standin/finetune.md: the stand-in fine-tuned counts
  # within 15 % on 13 of 15 runs, 9 of 15 at a tenth, ranking and correcting as well).
  c.backbone = dict(name="", mode="frozen", batch_size=64, image_size=0, lr_scale=0.05,
                    trainable="")
  # The detection recipe of the AUM reference code: SGD with momentum at a constant rate,
  # no weight decay (measured in experiments/results/recipe; see README).
  c.batch_size = 128
  # Vectors (N, D), such as embeddings or a frozen backbone's features: batch_size and
  # optimizer.lr both doubled where an epoch keeps at least 16 steps, the same answers in
  # half the steps (experiments/results/standin/recipe.md); False: as set.
  c.vector_batch = True
  c.num_epochs = 20
  c.optimizer = dict(lr=0.05, momentum=0.9, nesterov=False, weight_decay=0.0,
                     schedule="constant", drops=(0.5, 0.75), drop_factor=0.1, warmup_epochs=0)
  c.augment = dict(crop=0, flip=False)  # crop: zero padding in pixels, 0 = off
  c.record_dynamics = True
  c.trajectories = False  # also stream per-epoch margin and correctness to WORKDIR/trajectories/
  c.ensemble = 1  # members trained together in one step (vmap); scores are their means
  # GraNd (Paul et al. 2021, jaxclean/grand.py): the per-example loss-gradient norm, a `grand`
  # column in scores.csv; epochs -1 = off, 0 = at initialisation, k = after k epochs.
  c.grand = dict(epochs=-1)
  # threshold_samples: none | two_runs (two trainings, N // C relabelled each) | copies (one run).
  # rule (copies): confident (the count from the early window's confident joint, flagged =
  # that many top suspects) | percentile (the paper's 99th) | calibrated (mixture proportion).
  # copies_margin: real (the extra class never counts against a real label) | all.
  c.aum = dict(skip_epochs=1, threshold_samples="copies", percentile=99.0, rule="confident",
               copies_margin="real")
  # The early window: the records' early fields (the suggestion, `combined`, the count) stop
  # after the first epoch, from the min_epochs-th on, in which the threshold copies' training
  # accuracy reaches copies_accuracy or their mean probability of their (wrong) label reaches
  # copies_probability: the model has started to memorise wrong labels.
  c.early = dict(copies_accuracy=0.085, copies_probability=0.15, min_epochs=2)
  # Clean and retrain: method none | keep_all | aum_threshold | score | oracle | random;
  # or in_run: no retraining, the run itself stops training on what it has flagged at
  # at_epoch (k: after epoch k; 0: when the early window closes), threshold copies too once
  # the window has closed, optionally with the optimiser's state made anew (fresh_optimizer).
  # After epoch 5 beat the window's close on every case of experiments/results/clean_in_run.
  c.clean = dict(method="none", score="forgetting", fraction=0.1, count=0, seed=0,
                 at_epoch=5, fresh_optimizer=False)
  # Retraining recipe: the detection run's settings, with these replaced where set.
  c.clean.retrain = dict(num_epochs=config_dict.placeholder(int),
                         batch_size=config_dict.placeholder(int))
  c.num_devices = 0  # 0 = every device
  c.shard_records = False  # split the records over the devices (N / D rows each) instead of copies
  # Saved at every every_steps-th step (0: none), at the last step, and at an epoch's end
  # once every_seconds have passed since the last save (0: every epoch end).
  c.checkpoint = dict(every_steps=0, keep=3, every_seconds=30)
  c.eval_every_epochs = 1  # 0: only after the last epoch (always evaluated)
  c.log_every_steps = 20
  c.progress = True
  return c
