"""Stand-in pretrained backbones and mislabel detection on their embeddings: experiments/standin.py.

Three stand-ins (jaxclean's small CNN with batch norm, trained with clean labels on images
outside those we clean; features = its 128-wide penultimate layer, cached under
exp.features_dir), then every case x seed x recipe of jaxclean on the embeddings
(results/standin/recipe.md), the kNN vote, and the chosen recipe against cleanlab's
recipe on the same embeddings (results/standin/standin.md):
  python -m experiments.standin --config=configs/exp_standin.py --workdir=/work/runs/standin
On 2 loaded cores, split between processes (every run is kept and read back), then the tables:
  python -m experiments.standin --config=configs/exp_standin.py --workdir=/work/runs/standin \
      --config.exp.only=Fashion --config.exp.results_dir=     # also 10k, 50k; only_recipes=
  python -m experiments.standin --config=configs/exp_standin.py --workdir=/work/runs/standin \
      --config.exp.read_only=True
Load them: features np.load(<features_dir>/<standin>_<split>.npy); the stand-in
experiments.standin.model(standin, 10) = jaxclean.models.CNN(num_classes=10, width=32,
batch_norm=True) with flax.serialization.msgpack_restore(<standin>_variables.msgpack), on
images (x - mean) / std with <standin>_info.npz's per-channel mean and std (0-255 units).
"""

from configs import default
from configs.exp_compare import FASHION_MNIST_PAIRS

CIFAR10N = ("aggre", "random1", "random2", "random3", "worst")
B128 = {"vector_batch": False}  # recipes measured at batch 128, lr 0.05


def get_config():
  c = default.get_config()
  c.noise.pairs = FASHION_MNIST_PAIRS
  c.progress = False
  c.num_devices = 1
  c.log_every_steps = 1000
  standin = dict(width=32, batch_size=128, lr=0.05, weight_decay=5e-4, crop=4, flip=True,
                 seed=0)
  c.exp = dict(
      results_dir="experiments/results/standin",
      features_dir="/work/runs/standin/features",  # .npy features and params; never the repo
      # name, data source, the images it is trained on (split, first, last) with clean labels,
      # its epochs, and the images it embeds.
      standins=(
          dict(standin, name="cifar10", data="cifar10", fit=("train", 20000, 50000), epochs=15,
               embed=(("train", 0, 10000), ("test", 0, 10000))),
          dict(standin, name="cifar10_test", data="cifar10", fit=("test", 0, 10000), epochs=12,
               embed=(("train", 0, 50000),)),
          dict(standin, name="fashion_mnist", data="fashion_mnist", fit=("train", 12000, 60000),
               epochs=6, embed=(("train", 0, 12000), ("test", 0, 10000))),
      ),
      # (label, stand-in, its embedded train images, labels): a CIFAR-10N label set, or
      # injected noise "kind rate" on the clean labels.
      cases=tuple((f"CIFAR-10N {s} 10k", "cifar10", 10000, s) for s in CIFAR10N)
      + (("CIFAR-10N aggre 50k", "cifar10_test", 50000, "aggre"),
         ("CIFAR-10N worst 50k", "cifar10_test", 50000, "worst"))
      + tuple((f"Fashion-MNIST {k} {r:.0%}", "fashion_mnist", 12000, f"{k} {r}")
              for k, r in (("uniform", 0.2), ("uniform", 0.4), ("asymmetric", 0.2),
                           ("asymmetric", 0.3), ("asymmetric", 0.4))),
      seeds=(0, 1),  # seed and noise.seed of each repeat
      # name -> (feature normalisation: none | l2, jaxclean overrides); the pipeline always
      # standardises each feature (Dataset.mean_std of (N, 1, 1, D) vectors).
      recipes=dict(
          # MLP (256, 256), SGD momentum 0.9, no wd, 20 epochs; batch 256 at lr 0.1 on
          # every case here (vector_batch: batch_size 128 and lr 0.05, both x2)
          default=("none", {}),
          b128=("none", B128),  # batch 128, lr 0.05: the image recipe
          b512_lr0_2=("none", {"batch_size": 512, "optimizer.lr": 0.2, **B128}),
          b512_lr0_1=("none", {"batch_size": 512, "optimizer.lr": 0.1, **B128}),
          # measured on batch 128 (the default before vector_batch)
          linear=("none", {"model.name": "mlp", "model.hidden": (), **B128}),
          lr_0_01=("none", {"optimizer.lr": 0.01, **B128}),
          wd_5e_4=("none", {"optimizer.weight_decay": 5e-4}),
          # four heads in one step, scores their means (run beside a fine-tuning process: its
          # seconds are not comparable; alone against default at 10k, 2.1x the time)
          ensemble4=("none", {"ensemble": 4}),
          # 30 and 40 epochs (also run beside a fine-tuning process)
          epochs30=("none", {"num_epochs": 30}),
          epochs40=("none", {"num_epochs": 40}),
          l2=("l2", B128),
          linear_l2=("l2", {"model.name": "mlp", "model.hidden": (), **B128}),
      ),
      chosen="default",
      # Splitting the work between processes: regexes on the case labels and the recipe
      # names; read_only: tables of the finished runs only, nothing trained.
      only="", only_recipes="", read_only=False,
      knn=15,  # neighbours of the kNN vote (cosine, itself excluded)
      # The stand-in fine-tuned on the images (find_label_issues(model=, variables=)): the
      # cases it runs on (a regex on their labels) and the seeds.
      # finetune_scales: backbone.lr_scale values (results/finetune.md; the default's run is
      # standin.md's fine-tuned). finetune_overrides: find_label_issues keywords.
      # Seed 1 was run on the CIFAR-10N slices only; the runs were made at lr_scale 0.1 with
      # optimizer__lr 0.025 / 0.05 (the same rates, 0.0025 / 0.005).
      finetune="10k|Fashion", finetune_seeds=(0, 1), finetune_scales=(0.05, 0.1),
      finetune_overrides={},
      cleanlab_folds=5,
  )
  return c
