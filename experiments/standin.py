"""Stand-in pretrained backbones, and mislabel detection on their embeddings.

No pretrained weights can be downloaded here, so we make our own: jaxclean's small CNN
with batch norm (`jaxclean.models.CNN(num_classes, width, batch_norm=True)`), trained with
CLEAN labels on images outside those we clean (SGD Nesterov, cosine, weight decay, random
crop and flip). Its penultimate layer (ReLU of the 128-wide dense) embeds the images we
clean; features and variables are cached under `exp.features_dir` as
`<standin>_<split>.npy` and `<standin>_variables.msgpack` (flax.serialization).

Then, per case (CIFAR-10N label sets on the stand-in's embeddings, Fashion-MNIST with
injected noise), seed and recipe: jaxclean's `find_label_issues` pipeline on the (N, D)
embeddings, the kNN vote of the embeddings' neighbours (share of the k nearest, cosine,
carrying the given label; their majority label as a suggestion), and cleanlab's
documented recipe on the same embeddings (5-fold cross-validated LogisticRegression ->
`cleanlab.filter.find_label_issues`, `cleanlab.count.num_label_issues`, the out-of-fold
argmax as the suggestion). Writes recipe.md (every recipe) and standin.md (the chosen
recipe against cleanlab).

  python -m experiments.standin --config=configs/exp_standin.py --workdir=/work/runs/standin
"""

from __future__ import annotations

import itertools
import os
import re
import time

import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pandas as pd
import threadpoolctl

from experiments import settings, tables
from jaxclean import api, augment, decide, noise, protocol, quality, rng
from jaxclean import data as data_lib
from jaxclean.data import sources
from jaxclean.models import CNN


def model(standin, num_classes: int) -> CNN:
  """The stand-in's flax module: its variables load into this (params and batch_stats)."""
  return CNN(num_classes=num_classes, width=standin["width"], batch_norm=True)


def _load(config, standin) -> data_lib.Dataset:
  return data_lib.load(settings.with_overrides(config, {"data.name": standin["data"],
                                                        "data.train_size": 0,
                                                        "data.eval_size": 0}).data)


def _split(ds, split: str, first: int, last: int):
  s = ds.train if split == "train" else ds.test
  return np.asarray(s.images[first:last]), np.asarray(ds.train_clean_labels[first:last]
                                                      if split == "train"
                                                      and ds.train_clean_labels is not None
                                                      else s.labels[first:last])


def fit(standin, images, labels, num_classes: int, test=None):
  """Trains the stand-in on (images, labels); returns (variables, mean, std, test accuracy)."""
  stats = sources.PixelStats(images.shape[-1])
  stats.add(images)
  mean, std = stats.mean_std()
  net = model(standin, num_classes)
  seed, batch = standin["seed"], standin["batch_size"]
  steps = len(images) // batch
  variables = net.init(rng.key(seed, "init"), jnp.zeros((1, *images.shape[1:])), train=False)
  total = steps * standin["epochs"]
  schedule = optax.warmup_cosine_decay_schedule(0.0, standin["lr"], total // 10, total)
  tx = optax.chain(optax.add_decayed_weights(standin["weight_decay"]),
                   optax.sgd(schedule, momentum=0.9, nesterov=True))
  params, batch_stats, opt = variables["params"], variables["batch_stats"], None
  opt = tx.init(params)
  augment_key = rng.key(seed, "augment")

  @jax.jit
  def step(params, batch_stats, opt, x, y, index, count):
    x = augment.augment((x.astype(jnp.float32) - mean) / std,
                        jax.random.fold_in(augment_key, count), index, standin["crop"],
                        standin["flip"])

    def loss(p):
      logits, new = net.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                              mutable=["batch_stats"])
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new

    (_, new), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), new["batch_stats"], opt

  for epoch in range(standin["epochs"]):
    order = rng.numpy(seed, "order", epoch).permutation(len(images))
    for i in range(steps):
      rows = order[i * batch:(i + 1) * batch]
      params, batch_stats, opt = step(params, batch_stats, opt, images[rows], labels[rows],
                                      rows, epoch * steps + i)
  variables = {"params": params, "batch_stats": batch_stats}
  accuracy = None
  if test is not None:
    logits = _apply(net, variables, test[0], mean, std, features=False)
    accuracy = float(np.mean(logits.argmax(1) == test[1]))
  return variables, mean, std, accuracy


def _apply(net, variables, images, mean, std, features: bool, batch: int = 1000):
  """Logits, or the penultimate layer's ReLU'd activations, in batches (eval mode)."""
  @jax.jit
  def one(x):
    x = (x.astype(jnp.float32) - mean) / std
    logits, inter = net.apply(variables, x, train=False, capture_intermediates=True,
                              mutable=["intermediates"])
    return jax.nn.relu(inter["intermediates"]["Dense_0"]["__call__"][0]) if features else logits

  return np.concatenate([np.asarray(one(images[s:s + batch]))
                         for s in range(0, len(images), batch)])


def standin_features(config, standin) -> dict:
  """{split: features} of the stand-in, trained (and its outputs cached) on first use."""
  d, name = config.exp.features_dir, standin["name"]
  paths = {split: os.path.join(d, f"{name}_{split}.npy") for split, _, _ in standin["embed"]}
  if all(os.path.isfile(p) for p in paths.values()):
    return {s: np.load(p) for s, p in paths.items()}
  ds = _load(config, standin)
  images, labels = _split(ds, *standin["fit"])
  held = [s for s in ("test", "train") if s != standin["fit"][0]][0]
  test = _split(ds, held, 0, 10000) if standin["fit"][0] == "test" else (
      np.asarray(ds.test.images), np.asarray(ds.test.labels))
  with settings.Timer() as t:
    variables, mean, std, accuracy = fit(standin, images, labels, ds.num_classes, test)
  net = model(standin, ds.num_classes)
  with settings.Timer() as e:
    out = {s: _apply(net, variables, _split(ds, s, a, b)[0], mean, std, features=True)
           for s, a, b in standin["embed"]}
  os.makedirs(d, exist_ok=True)
  with open(os.path.join(d, f"{name}_variables.msgpack"), "wb") as f:
    f.write(flax.serialization.to_bytes(variables))
  np.savez(os.path.join(d, f"{name}_info.npz"), mean=mean, std=std, accuracy=accuracy,
           fit_seconds=t.seconds, embed_seconds=e.seconds, embedded=sum(
               len(v) for v in out.values()), num_classes=ds.num_classes)
  for s, f in out.items():
    np.save(paths[s], f)
  print(f"stand-in {name}: {len(images)} images, {standin['epochs']} epochs, {t.seconds:.0f} s, "
        f"accuracy on {held} {accuracy:.4f}; embedded {e.seconds:.1f} s", flush=True)
  return out


def knn_vote(x, labels, k: int, num_classes: int, block: int = 1000):
  """(share of each example's k nearest embeddings, cosine, itself excluded, that carry its
  label; their majority label), by a blocked matmul, on one BLAS thread: on a loaded machine
  OpenBLAS's threads spin against each other (a LogisticRegression fit ran 40x slower)."""
  with threadpoolctl.threadpool_limits(1):
    return _knn_vote(x, labels, k, num_classes, block)


def _knn_vote(x, labels, k, num_classes, block):
  z = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  share, majority = np.empty(len(x)), np.empty(len(x), np.int64)
  for s in range(0, len(x), block):
    sims = z[s:s + block] @ z.T
    sims[np.arange(len(sims)), np.arange(s, s + len(sims))] = -np.inf
    near = labels[np.argpartition(-sims, k, axis=1)[:, :k]]
    share[s:s + block] = np.mean(near == labels[s:s + block, None], axis=1)
    majority[s:s + block] = np.argmax((near[..., None] == np.arange(num_classes)).sum(1), 1)
  return share, majority


def _ranks(suspicion):
  return pd.Series(suspicion).rank().to_numpy()


def _answers(suspicion, count, flagged, suggested, labels, truth) -> dict:
  """AUROC, count error, suggestion accuracy on the wrong labels, label accuracy before and
  after every flagged label takes its suggestion."""
  wrong = labels != truth
  after = labels.copy()
  after[flagged] = suggested[flagged]
  return dict(auroc=quality.quality(suspicion, wrong)["auroc"], wrong=int(wrong.sum()),
              count=count, count_error=(count - wrong.sum()) / wrong.sum(),
              suggestion=float(np.mean(suggested[wrong] == truth[wrong])),
              given=float(np.mean(labels == truth)), after=float(np.mean(after == truth)))


def _top(suspicion, count):
  return np.argsort(-suspicion, kind="stable")[:count]


def _jaxclean(x, labels, x_test, y_test, overrides: dict, workdir: str):
  """`api.find_label_issues` with model options too (its keywords cannot add a field): the
  same steps on `api.make_config`'s config; a finished workdir is read back."""
  done = os.path.join(workdir, "seconds.txt")
  if not os.path.isfile(done):
    c = settings.with_overrides(api.make_config({}), overrides)
    ds = sources.from_arrays(c.data, x, labels, x_test, y_test)
    with settings.Timer() as t:
      protocol.train_and_evaluate(c, workdir, dataset=ds)
    with open(done, "w") as f:
      f.write(f"{t.seconds}")
  with open(done) as f:
    return api.load_result(workdir), float(f.read())


def _cleanlab(x, labels, folds: int) -> dict:
  """cleanlab's recipe for embeddings: out-of-fold LogisticRegression probabilities."""
  import cleanlab.count, cleanlab.filter, cleanlab.rank
  from sklearn.linear_model import LogisticRegression
  from sklearn.model_selection import cross_val_predict
  with settings.Timer() as t, threadpoolctl.threadpool_limits(1):  # see knn_vote
    probs = cross_val_predict(LogisticRegression(max_iter=1000), x, labels, cv=folds,
                              method="predict_proba")
    issues = cleanlab.filter.find_label_issues(labels, probs, n_jobs=1)  # no fork beside JAX
    count = int(cleanlab.count.num_label_issues(labels, probs))
    score = cleanlab.rank.get_label_quality_scores(labels, probs)
  return dict(suspicion=1 - score, count=count, flagged=np.flatnonzero(issues),
              suggested=probs.argmax(1), seconds=t.seconds)


def _case(config, case, seed, features, loaded):
  """(embeddings, given labels, true labels, test embeddings, test labels) of a case."""
  _, name, n, spec = case
  kind, _, rate = spec.partition(" ")
  standin = next(s for s in config.exp.standins if s["name"] == name)
  key = (name, spec if not rate else "clean")
  if key not in loaded:
    loaded[key] = _load(settings.with_overrides(config, {} if rate else {
        "data.cifar10_labels": spec}), standin)
  ds = loaded[key]
  truth = (ds.train.labels if ds.train_clean_labels is None else ds.train_clean_labels)[:n]
  labels = (noise.inject(truth, ds.num_classes, kind, float(rate), seed, config.noise.pairs)[0]
            if rate else np.asarray(ds.train.labels[:n]))
  test = features[name].get("test")
  return (features[name]["train"][:n], labels, truth, test,
          None if test is None else np.asarray(ds.test.labels[:len(test)]))


def _normalise(x, how: str):
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) if how == "l2" else x


def _cleanlab_cached(x, labels, folds: int, path: str) -> dict:
  if not os.path.isfile(path):
    out = _cleanlab(x, labels, folds)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, **out)
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def _knn_cached(x, labels, k: int, num_classes: int, path: str):
  if not os.path.isfile(path):
    with settings.Timer() as t:
      share, majority = knn_vote(x, labels, k, num_classes)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, share=share, majority=majority, seconds=t.seconds)
  with np.load(path) as f:
    return f["share"], f["majority"], float(f["seconds"])


def run(config, workdir: str, command: str | None = None) -> pd.DataFrame:
  """Stand-ins, then rows per (recipe, seed, case): jaxclean alone and with the kNN vote, the
  kNN vote and cleanlab; every run is kept under `workdir` and read back by a rerun, so
  `exp.only` and `exp.only_recipes` (regexes on case labels and recipe names) can split the
  work between processes and a final run with `exp.read_only` (no training) writes the tables
  of all. Tables are rewritten after every case."""
  cases = [c for c in config.exp.cases if re.search(config.exp.only, c[0])]
  recipes = {k: v for k, v in config.exp.recipes.items() if re.search(config.exp.only_recipes, k)}
  names = {c[1] for c in cases}
  features = {s["name"]: standin_features(config, s) for s in config.exp.standins
              if s["name"] in names}
  info = {n: dict(np.load(os.path.join(config.exp.features_dir, f"{n}_info.npz")))
          for n in names}
  rows, loaded, votes, start = [], {}, {}, time.perf_counter()
  for recipe, (how, overrides) in recipes.items():
    for seed in config.exp.seeds:
      for case in cases:
        label, name = case[0], case[1]
        x, labels, truth, x_test, y_test = _case(config, case, seed, features, loaded)
        where = os.path.join(workdir, "runs", settings.slug(label), f"seed{seed}")
        classes = int(info[name]["num_classes"])
        common = dict(setting=label, seed=seed, embed_seconds=float(
            info[name]["embed_seconds"]) * len(x) / float(info[name]["embedded"]))
        path = os.path.join(where, "cleanlab.npz")
        if config.exp.read_only and not os.path.isfile(path):
          continue  # a case not started
        if (label, seed) not in votes:
          votes[label, seed] = _knn_cached(x, labels, config.exp.knn, classes,
                                           os.path.join(where, "knn.npz"))
        share, majority, vote_seconds = votes[label, seed]
        if recipe == next(iter(recipes)):
          vote = np.flatnonzero(majority != labels)
          rows.append(dict(common, method="kNN vote", **_answers(
              1 - share, len(vote), vote, majority, labels, truth), seconds=vote_seconds))
          out = _cleanlab_cached(x, labels, config.exp.cleanlab_folds, path)
          rows.append(dict(common, method="cleanlab", **_answers(
              out["suspicion"], int(out["count"]), out["flagged"], out["suggested"], labels,
              truth), seconds=float(out["seconds"])))
        run_dir = os.path.join(where, recipe)
        if config.exp.read_only and not os.path.isfile(os.path.join(run_dir, "seconds.txt")):
          continue
        result, seconds = _jaxclean(
            _normalise(x, how), labels, None if x_test is None else _normalise(x_test, how),
            y_test, dict(overrides, seed=seed, progress=False, num_devices=1), run_dir)
        combined = result.scores["combined"].to_numpy()
        suggested = result.scores["suggested_label"].to_numpy()
        count = int(result.estimated_wrong_labels)
        history = pd.read_csv(os.path.join(result.workdir, "history.csv"))
        common = dict(common, recipe=recipe, closed_after=int(history["early"].sum()))
        rows.append(dict(common, method="jaxclean", **_answers(
            combined, count, result.flagged, suggested, labels, truth), seconds=seconds,
                         corrected=_corrected(result, truth)))
        mean_rank = _ranks(combined) + _ranks(1 - share)
        top = _top(mean_rank, count)
        rows.append(dict(common, method="jaxclean + kNN ranks", **_answers(
            mean_rank, count, top, suggested, labels, truth), seconds=seconds + vote_seconds))
        rows.append(dict(common, method="jaxclean + kNN ranks, kNN suggestion", **_answers(
            mean_rank, count, top, majority, labels, truth), seconds=seconds + vote_seconds))
        write_tables(config, workdir, pd.DataFrame(rows), info,
                     time.perf_counter() - start, command)
  default_scale = config.backbone.lr_scale
  for seed, scale, case in itertools.product(config.exp.finetune_seeds,
                                             config.exp.finetune_scales, cases):
    if not re.search(config.exp.finetune, case[0]):
      continue
    name = "finetuned" if scale == default_scale else f"finetuned_lr_scale_{scale:g}"
    run_dir = os.path.join(workdir, "runs", settings.slug(case[0]), f"seed{seed}", name)
    if config.exp.read_only and not os.path.isfile(os.path.join(run_dir, "seconds.txt")):
      continue
    rows.append(_finetuned(config, case, seed, scale, features, loaded, run_dir))
    if scale != default_scale:  # finetune.md only; standin.md has the default's
      rows[-1]["recipe"] = name
    write_tables(config, workdir, pd.DataFrame(rows), info, time.perf_counter() - start,
                 command)
  return pd.DataFrame(rows)


def _finetuned(config, case, seed, scale, features, loaded, workdir: str) -> dict:
  """The stand-in fine-tuned on the case's images by jaxclean's step, as a user's own model:
  `find_label_issues(images, labels, model=the stand-in's module, variables=its weights)`
  (its 10-class head starts fresh: the run has 11 outputs), at `scale` x optimizer.lr."""
  label, name = case[0], case[1]
  standin = next(s for s in config.exp.standins if s["name"] == name)
  x, labels, truth, _, _ = _case(config, case, seed, features, loaded)
  ds = next(v for (n, _), v in loaded.items() if n == name)
  images, test = np.asarray(ds.train.images[:len(x)]), ds.test
  done = os.path.join(workdir, "seconds.txt")
  if not os.path.isfile(done):
    path = os.path.join(config.exp.features_dir, f"{name}_variables.msgpack")
    with open(path, "rb") as f:
      variables = flax.serialization.msgpack_restore(f.read())
    with settings.Timer() as t:
      api.find_label_issues(images, labels, x_test=np.asarray(test.images),
                            y_test=np.asarray(test.labels), model=model(standin, ds.num_classes),
                            variables=variables, workdir=workdir, seed=seed, progress=False,
                            num_devices=1, backbone__lr_scale=scale,
                            **config.exp.finetune_overrides)
    with open(done, "w") as f:
      f.write(f"{t.seconds}")
  result = api.load_result(workdir)
  with open(done) as f:
    seconds = float(f.read())
  scores = result.scores
  return dict(setting=label, seed=seed, embed_seconds=0.0, method="fine-tuned", lr_scale=scale,
              **_answers(scores["combined"].to_numpy(), int(result.estimated_wrong_labels),
                         result.flagged, scores["suggested_label"].to_numpy(), labels, truth),
              seconds=seconds, corrected=_corrected(result, truth))


def _corrected(result: api.LabelIssues, truth: np.ndarray) -> float:
  """Label accuracy of corrected_labels.npy as a run makes it today (`decide.again`)."""
  if "early_rival" not in result.scores:  # a run without threshold copies
    return float("nan")
  return float(np.mean(decide.corrected(decide.again(result.workdir)) == truth))


def _pivot(df, value, column, order) -> pd.DataFrame:
  """Settings x `column` means over seeds of `value`, with a mean row over the settings."""
  settings_ = list(dict.fromkeys(df["setting"]))
  p = df.groupby(["setting", column], sort=False)[value].mean().unstack()
  p = p.loc[settings_, [c for c in order if c in p.columns]]
  p.loc["mean over cases"] = p.mean()
  return p.reset_index().rename(columns={"index": "setting"}).rename_axis(columns=None)


def write_tables(config, workdir, df, info, seconds, command) -> None:
  """recipe.md (jaxclean per recipe, with and without the kNN vote) and standin.md (the chosen
  recipe, the kNN vote and cleanlab per case); means over the seeds."""
  df = df.assign(abs_count_error=df["count_error"].abs())
  recipes = list(config.exp.recipes)
  jax_rows = df[df["method"] == "jaxclean"]
  both = df[df["method"] == "jaxclean + kNN ranks"]
  knn = df[df["method"] == "jaxclean + kNN ranks, kNN suggestion"]
  seeds = ", ".join(str(s) for s in sorted(set(df["seed"])))
  load = f"Seeds {seeds} (seed and noise.seed); every number is the mean over them."
  tables.write_outputs(
      config, workdir, "recipe", "jaxclean on stand-in embeddings: which head and recipe",
      df, [("AUROC of `combined`", _pivot(jax_rows, "auroc", "recipe", recipes)),
           ("AUROC of the mean of the ranks of `combined` and the kNN vote",
            _pivot(both, "auroc", "recipe", recipes)),
           ("|count error| (estimated_wrong_labels against the truth, share of it)",
            _pivot(jax_rows, "abs_count_error", "recipe", recipes)),
           ("Suggestion accuracy on all truly wrong labels", _pivot(
               jax_rows, "suggestion", "recipe", recipes)),
           ("Label accuracy after every flagged label takes its suggestion (given: "
            "standin.md)", _pivot(jax_rows, "after", "recipe", recipes)),
           ("The same, flagged = the top count by the mean rank, with the kNN majority as "
            "suggestion", _pivot(knn, "after", "recipe", recipes)),
           ("Epochs in the early window (closed after)", _pivot(
               jax_rows, "closed_after", "recipe", recipes), ".1f"),
           ("Wall seconds of find_label_issues (embeddings given)", _pivot(
               jax_rows, "seconds", "recipe", recipes), ".0f")],
      seconds, command, notes=[load] + [
          f"{name}: {'L2-normalised rows, then ' if how == 'l2' else ''}the pipeline's "
          f"per-feature standardisation; {overrides or 'configs/default.py'}"
          for name, (how, overrides) in config.exp.recipes.items()])
  tuned = df[df["method"] == "fine-tuned"]
  if len(tuned):
    scales = sorted(set(tuned["lr_scale"]))
    tables.write_outputs(
        config, workdir, "finetune", "The stand-in fine-tuned as a user's own model, at each "
        "backbone.lr_scale", tuned, [
            ("AUROC against the truly wrong labels", _pivot(tuned, "auroc", "lr_scale", scales)),
            ("Count error (share of the truth)", _pivot(
                tuned, "count_error", "lr_scale", scales), "+.3f"),
            ("Runs with the count within 15 %", tuned.assign(
                within=tuned["abs_count_error"] <= 0.15).groupby("lr_scale")["within"].agg(
                    ["sum", "count"]).reset_index().astype({"lr_scale": str})),
            ("Suggestion accuracy on all truly wrong labels", _pivot(
                tuned, "suggestion", "lr_scale", scales)),
            ("Label accuracy of corrected_labels.npy", _pivot(
                tuned, "corrected", "lr_scale", scales)),
            ("Wall seconds", _pivot(tuned, "seconds", "lr_scale", scales), ".0f")],
        seconds, command, notes=[
            f"Seeds {sorted(set(tuned['seed']))} where run (means over them). The whole "
            "model trains at backbone.lr_scale x optimizer.lr (optimizer.lr 0.05). Wall "
            "seconds: on 2 cores, mostly beside another process."])
  chosen = df[(df["recipe"] == config.exp.chosen) | df["recipe"].isna()]
  chosen = chosen.assign(method=chosen["method"].replace({
      "jaxclean": "jaxclean", "jaxclean + kNN ranks": "jaxclean+kNN",
      "jaxclean + kNN ranks, kNN suggestion": "jaxclean+kNN (kNN sugg.)"}))
  methods = ["jaxclean", "cleanlab", "fine-tuned", "kNN vote", "jaxclean+kNN",
             "jaxclean+kNN (kNN sugg.)"]
  counts = chosen[chosen["method"].isin(["jaxclean", "cleanlab", "fine-tuned", "kNN vote"])]
  wall = chosen[chosen["method"].isin(["jaxclean", "cleanlab", "fine-tuned"])]
  wall = wall.assign(seconds=wall["seconds"] + wall["embed_seconds"])
  standins = pd.DataFrame([dict(standin=s["name"], data=s["data"], trained_on=
                                f"{s['fit'][0]} {s['fit'][1]}-{s['fit'][2] - 1}",
                                epochs=s["epochs"], accuracy=float(info[s["name"]]["accuracy"]),
                                fit_seconds=float(info[s["name"]]["fit_seconds"]),
                                embed_seconds=float(info[s["name"]]["embed_seconds"]))
                           for s in config.exp.standins if s["name"] in info])
  given = _pivot(chosen[chosen["method"] == "cleanlab"], "given", "method", ["cleanlab"])
  after = _pivot(chosen, "after", "method", methods)
  after.insert(1, "given", given["cleanlab"])
  tables.write_outputs(
      config, workdir, "standin",
      f"jaxclean (recipe {config.exp.chosen}) against cleanlab on stand-in embeddings", df,
      [("Stand-in backbones (accuracy: CIFAR-10 / Fashion-MNIST test split; cifar10_test: the "
        "first 10,000 training images)", standins, ".3f"),
       ("AUROC against the truly wrong labels", _pivot(chosen, "auroc", "method", methods)),
       ("Count: estimated wrong labels (jaxclean estimated_wrong_labels, cleanlab "
        "num_label_issues, kNN: majority differs from the label)", _pivot(
            counts, "count", "method", ["jaxclean", "cleanlab", "fine-tuned", "kNN vote"]).assign(
                wrong=lambda p: _pivot(counts, "wrong", "method", ["cleanlab"])["cleanlab"]),
        ".0f"),
       ("Count error (share of the truth)", _pivot(
           counts, "count_error", "method", ["jaxclean", "cleanlab", "fine-tuned", "kNN vote"]),
        "+.3f"),
       ("Suggestion accuracy on all truly wrong labels", _pivot(
           chosen, "suggestion", "method", methods)),
       ("Label accuracy, given and after every flagged label takes its suggestion", after),
       ("Label accuracy of corrected_labels.npy (the run's automatic decisions applied; "
        "given: the table above)", _pivot(chosen[chosen["method"].isin(
            ["jaxclean", "fine-tuned"])], "corrected", "method", ["jaxclean", "fine-tuned"])),
       ("Wall seconds, the stand-in's forward pass over the case's images included",
        _pivot(wall, "seconds", "method", ["jaxclean", "cleanlab", "fine-tuned"]), ".0f")],
      seconds, command, notes=[
          load, "cleanlab: 5-fold cross_val_predict of sklearn LogisticRegression(max_iter=1000)"
          " on the raw embeddings, cleanlab.filter.find_label_issues, num_label_issues, "
          "get_label_quality_scores (self-confidence) and the out-of-fold argmax.",
          f"kNN vote: the {config.exp.knn} nearest embeddings by cosine, itself excluded; "
          "suspicion = 1 - the share carrying the given label; flagged = the majority "
          "differs; jaxclean+kNN: the mean of the two ranks, the top jaxclean-count flagged.",
          "Forward pass: the stand-in's embed time, scaled to the case's images.",
          "fine-tuned: the stand-in trained on the case's images inside jaxclean's step, as a "
          "user's own model (find_label_issues(images, labels, model=, variables=), so at "
          "backbone.lr_scale x optimizer.lr); "
          f"seeds {tuple(config.exp.finetune_seeds)}, cases matching {config.exp.finetune!r}.",
          "Wall seconds: jaxclean and cleanlab one process at a time on 2 otherwise idle "
          "cores; fine-tuned mostly two processes at a time."])


if __name__ == "__main__":
  settings.cli("experiments.standin", run)
