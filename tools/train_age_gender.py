"""Train the age, gender (and mask) heads over the attribute networks' outputs + the appearance vector.

Every face goes through the server's own path (:meth:`AttributeEstimator.outputs`, YuNet
box and landmarks -> dlib chips, SFace's appearance vector, mask SSD); the outputs are cached
(``--cache``). Heads are scikit-learn models turned into :class:`openiai.vision.heads.LinearHead`
(standardisation + one linear layer); their hyper-parameters are chosen by cross-validation
on the train split only, and the held-out figures are computed on the test split through the
same runtime functions the server uses (:mod:`openiai.vision.demographics`,
:mod:`openiai.vision.masks`).

* ``age`` (ridge, years) over [net's expected age, net's log-probabilities, appearance];
  trained on UTKFace train faces (training age range and ridge strength chosen by 5-fold CV on
  the train split's adults), measured on UTKFace test adults 18-65.
* ``gender`` (logistic) over [net's logit, appearance]; UTKFace train + CelebA-HQ train identities.
* ``--mask``: ``mask`` (logistic) over the appearance vector alone on the mask set's train
  split; the face-mask SSD is run beside it only to record its figures on the same split (the
  server no longer runs the SSD: the head matches it at none of its cost).
* ``--sweep``: the crop sizes of the expression and mask models (CelebA-HQ train Smiling AUC of
  p(happy); mask-set train balanced accuracy of the SSD).

    PYTHONPATH=. python tools/train_age_gender.py --cache /tmp/demo_cache [--mask] [--sweep]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from openiai.bench import attribute_data as ad
from openiai.bench.evaluate import face_pipeline, testdata_dir
from openiai.vision import demographics, masks
from openiai.vision.heads import LinearHead, save_heads
from openiai.vision.models.age_gender import expected_age

SPLITS = {
    "celeba_hq": "zlib.crc32(str(identity).encode()) % 10 < 7 -> train, else test (identity-disjoint)",
    "utkface": "zlib.crc32(filename.encode()) % 10 < 7 -> train, else test (no identities given)",
    "mask": "zlib.crc32(filename.encode()) % 10 < 7 -> train, else test (no identities given)",
}
DATASETS = {
    "utkface": "UTKFace crop_part1, 1,900 crops (attributes/utkface; research use only, "
               "non-commercial)",
    "celeba_hq": "CelebA-HQ, 5,000 images with CelebA identities and attributes "
                 "(attributes/celeba_hq; CelebA: non-commercial research use only)",
    "mask": "chandrikadeb7/Face-Mask-Detection (attributes/mask; MIT; many masks pasted on)",
}
ADULT = (18, 65)


def _head(name: str, link: str, scaler, coef: np.ndarray, bias) -> LinearHead:
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return LinearHead(name=name, link=link, mean=scaler.mean_.astype(np.float32),
                      scale=scale.astype(np.float32),
                      weights=np.asarray(coef, np.float32).reshape(-1, 1),
                      bias=np.asarray(bias, np.float32).reshape(1))


# --reuse-hyper: the shipped manifests' held-out sections (their chosen hyper-parameters).
REUSED: dict | None = None


def fit_age(x: np.ndarray, age: np.ndarray) -> tuple[LinearHead, dict]:
    """Ridge for age, with the training age range and the ridge strength chosen by 5-fold CV
    MAE on the train split's adults (18-65, the range it is measured on): faces far outside
    it (toddlers, the very old) pull a linear head towards the ends."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    ranges, alphas = ((0, 200), (10, 80)), np.logspace(2, 4.5, 6)
    if REUSED:
        old = REUSED[demographics.HEADS]
        ranges, alphas = (tuple(old["age_train_range"]),), np.array([old["age_ridge_alpha"]])
    scores = {}
    for lo, hi in ranges:
        for a in alphas:
            errs = []
            for fit_i, val_i in KFold(5, shuffle=True, random_state=0).split(x):
                fit_i = fit_i[(age[fit_i] >= lo) & (age[fit_i] <= hi)]
                val_i = val_i[(age[val_i] >= ADULT[0]) & (age[val_i] <= ADULT[1])]
                sc = StandardScaler().fit(x[fit_i])
                m = Ridge(alpha=a).fit(sc.transform(x[fit_i]), age[fit_i])
                errs.append(np.abs(np.clip(m.predict(sc.transform(x[val_i])), 0, 100) - age[val_i]))
            scores[(lo, hi, a)] = float(np.concatenate(errs).mean())
    lo, hi, a = min(scores, key=scores.get)
    keep = (age >= lo) & (age <= hi)
    sc = StandardScaler().fit(x[keep])
    m = Ridge(alpha=a).fit(sc.transform(x[keep]), age[keep])
    return _head("age", "identity", sc, m.coef_, m.intercept_), {
        "age_train_range": [lo, hi], "age_ridge_alpha": float(a),
        "age_cv_mae_train_adults": round(scores[(lo, hi, a)], 3), "age_n_train": int(keep.sum())}


def fit_logistic(x: np.ndarray, y: np.ndarray, name: str) -> tuple[LinearHead, float]:
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(x)
    if REUSED:
        from sklearn.linear_model import LogisticRegression

        c = (REUSED[demographics.HEADS]["gender_logistic_C"] if name == "gender"
             else REUSED[masks.HEADS]["logistic_C"])
        m = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(sc.transform(x), y)
        return _head(name, "logistic", sc, m.coef_[0], m.intercept_[0]), float(c)
    m = LogisticRegressionCV(Cs=np.logspace(-4, 0, 9), cv=5, max_iter=3000,
                             class_weight="balanced", scoring="balanced_accuracy").fit(sc.transform(x), y)
    return _head(name, "logistic", sc, m.coef_[0], m.intercept_[0]), float(m.C_[0])




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--mask", action="store_true")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="measure, write nothing")
    ap.add_argument("--reuse-hyper", action="store_true",
                    help="age range and ridge strength, the gender and mask heads' C from the "
                         "shipped manifests instead of the CV searches (and no ablations): one "
                         "fit per head, for a busy machine")
    ap.add_argument("--utkface-only", action="store_true",
                    help="train the gender head on UTKFace alone (no CelebA-HQ extraction); "
                         "its CelebA-HQ figure is then left to `openiai eval attributes`")
    args = ap.parse_args()
    global REUSED
    if args.reuse_hyper:
        from openiai.vision.heads import HEADS_DIR

        REUSED = {name: json.loads((HEADS_DIR / f"{name}.json").read_text())["held_out"]
                  for name in (demographics.HEADS, masks.HEADS)}
    testdata = testdata_dir()
    pipe = face_pipeline()
    # Each set runs only the networks its heads read (the appearance vector comes with them);
    # the mask set also runs the SSD, for the comparison its manifest records.
    which = {"utkface": ("age", "gender"), "celeba_hq": ("age", "gender"), "mask": ("mask",)}

    def load(name, items):
        cache = args.cache / f"{name}.npz" if args.cache else None
        return ad.outputs(pipe, items, which[name], cache, log=print)

    if args.sweep:
        sweep(pipe, testdata, load)
        return

    utk_items = ad.utkface(testdata)
    cel_items = [] if args.utkface_only else ad.celeba_hq(testdata)
    utk = load("utkface", utk_items)
    cel = load("celeba_hq", cel_items) if cel_items else {
        "found": np.zeros(0, bool), "padded": np.zeros(0, bool), "gender_p": np.zeros(0, np.float32),
        "appearance": np.zeros((0, utk["appearance"].shape[1]), np.float32)}
    u_age = np.array([i.label for i in utk_items])
    u_male = np.array([i.extra for i in utk_items])
    u_train = np.array([i.train for i in utk_items])
    c_male = np.array([i.label for i in cel_items])
    c_train = np.array([i.train for i in cel_items], bool)
    uf, cf = utk["found"].astype(bool), cel["found"].astype(bool)
    adult = (u_age >= ADULT[0]) & (u_age <= ADULT[1])
    print(f"UTKFace: {len(utk_items)} images, YuNet found {uf.sum()} ({utk['padded'].sum()} only after "
          f"padding), missed {(~uf).sum()}; CelebA-HQ: {len(cel_items)}, found {cf.sum()}, "
          f"missed {(~cf).sum()}")

    # ---- age
    tr, te = u_train & uf, ~u_train & uf & adult
    net_age = expected_age(utk["age_probs"])
    feats = demographics.age_features(utk["age_probs"], utk["appearance"])
    age_head, chosen = fit_age(feats[tr], u_age[tr])
    heads = {"age": age_head}
    pred = demographics.ages(utk["age_probs"][te], utk["appearance"][te], heads)
    figures = {
        "age_mae_utkface_test_adults": round(float(np.abs(pred - u_age[te]).mean()), 3),
        "age_mae_utkface_test_adults_net_alone": round(float(np.abs(net_age[te] - u_age[te]).mean()), 3),
        "age_n_test_adults": int(te.sum()), **chosen,
    }
    # Ablations (not shipped): net outputs only, appearance only.
    for label, cols in () if REUSED else (("net_only", slice(0, 82)), ("appearance_only", slice(82, None))):
        h, _ = fit_age(feats[tr][:, cols], u_age[tr])
        figures[f"age_mae_utkface_test_adults_{label}"] = round(
            float(np.abs(np.clip(h(feats[te][:, cols]), 0, 100) - u_age[te]).mean()), 3)

    # ---- gender
    g_feat_u = demographics.gender_features(utk["gender_p"], utk["appearance"])
    gtr_u, gtr_c = u_train & uf, c_train & cf
    x, y = g_feat_u[gtr_u], u_male[gtr_u]
    if cel_items:
        g_feat_c = demographics.gender_features(cel["gender_p"], cel["appearance"])
        x = np.concatenate([x, g_feat_c[gtr_c]])
        y = np.concatenate([y, c_male[gtr_c]])
    g_head, c_reg = fit_logistic(x, y, "gender")
    heads["gender"] = g_head
    ute, cte = ~u_train & uf & adult, ~c_train & cf
    pu = demographics.p_males(utk["gender_p"][ute], utk["appearance"][ute], heads)
    pc = demographics.p_males(cel["gender_p"][cte], cel["appearance"][cte], heads) if cel_items else None
    figures.update({
        "gender_accuracy_utkface_test_adults": round(float(np.mean((pu >= 0.5) == u_male[ute])), 4),
        "gender_accuracy_utkface_test_adults_net_alone": round(float(np.mean((utk["gender_p"][ute] >= 0.5) == u_male[ute])), 4),
        "gender_balanced_accuracy_celeba_hq_test": round(ad.balanced_accuracy_at_half(pc, c_male[cte]), 4) if cel_items else None,
        "gender_balanced_accuracy_celeba_hq_test_net_alone": round(ad.balanced_accuracy_at_half(cel["gender_p"][cte], c_male[cte]), 4) if cel_items else None,
        "gender_n_test_utkface_adults": int(ute.sum()), "gender_n_test_celeba_hq": int(cte.sum()),
        "gender_n_train": int(len(y)), "gender_logistic_C": c_reg,
    })
    for k, v in figures.items():
        print(f"  {k}: {v}")
    manifest = {
        "command": "PYTHONPATH=. python tools/train_age_gender.py --cache /tmp/demo_cache"
                   + (" --reuse-hyper" if REUSED else "") + (" --utkface-only" if args.utkface_only else ""),
        "features": {"age": "demographics.age_features: [age net expected age, log age-net "
                            "probabilities (81), SFace appearance vector (3072, 96 px)]",
                     "gender": "demographics.gender_features: [gender net logit p(male), SFace "
                               "appearance vector (3072, 96 px)]"},
        "splits": {k: SPLITS[k] for k in ("utkface", "celeba_hq")},
        "datasets": {k: DATASETS[k] for k in ("utkface", "celeba_hq")},
        "licence_note": "UTKFace and CelebA are research-only (non-commercial) data sets; these "
                        "heads were trained on them.",
        "held_out": figures,
        "yunet_misses": {"utkface": int((~uf).sum()), "utkface_found_after_padding": int(utk["padded"].sum()),
                         "celeba_hq": int((~cf).sum())},
    }
    if not args.dry_run:
        print("wrote", save_heads(demographics.HEADS, [heads["age"], heads["gender"]], manifest))
    if args.mask:
        train_mask(testdata, load, args.dry_run)


def train_mask(testdata, load, dry_run: bool) -> None:
    from sklearn.model_selection import cross_val_predict
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    items = ad.mask_set(testdata)
    d = load("mask", items)
    y = np.array([i.label for i in items])
    train = np.array([i.train for i in items])
    found = d["found"].astype(bool)
    tr, te = train & found, ~train & found
    feats = d["appearance"]
    ssd_cv = ad.balanced_accuracy_at_half(d["mask_ssd"][tr], y[tr])
    head, c_reg = fit_logistic(feats[tr], y[tr], "mask")
    cv_p = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(C=c_reg, max_iter=3000, class_weight="balanced")),
                             feats[tr], y[tr], cv=5, method="predict_proba")[:, 1]
    head_cv = ad.balanced_accuracy_at_half(cv_p, y[tr])
    p_head = masks.p_masks(d["appearance"][te], {"mask": head})
    figures = {
        "train_balanced_accuracy_ssd_alone": round(ssd_cv, 4),
        "train_cv_balanced_accuracy_head": round(head_cv, 4),
        "test_balanced_accuracy_ssd_alone_found": round(ad.balanced_accuracy_at_half(d["mask_ssd"][te], y[te]), 4),
        "test_balanced_accuracy_head_found": round(ad.balanced_accuracy_at_half(p_head, y[te]), 4),
        "test_n_found": int(te.sum()), "test_n": int((~train).sum()),
        "test_yunet_missed_with_mask": int((~train & ~found & (y == 1)).sum()),
        "test_yunet_missed_without_mask": int((~train & ~found & (y == 0)).sum()),
        "logistic_C": c_reg,
    }
    for k, v in figures.items():
        print(f"  mask {k}: {v}")
    if dry_run:
        return
    # The SSD runs here only for the comparison: the server answers Mask with this head alone.
    manifest = {"command": "PYTHONPATH=. python tools/train_age_gender.py --cache /tmp/demo_cache --mask"
                           + (" --reuse-hyper" if REUSED else ""),
                "features": "the SFace appearance vector (3072: SFaceAppearance, 96 px crop)",
                "splits": {"mask": SPLITS["mask"]}, "datasets": {"mask": DATASETS["mask"]},
                "chosen_because": "as accurate as the face-mask SSD (+ head) at none of its cost "
                                  "(the SSD's figures beside it, measured on the same split)",
                "held_out": figures}
    print("wrote", save_heads(masks.HEADS, [head], manifest))


def sweep(pipe, testdata, load) -> None:
    """Crop sizes: expression (Smiling AUC on CelebA-HQ train) and mask SSD (train balanced acc)."""
    from sklearn.metrics import roc_auc_score

    from openiai.vision.models.expression import CLASSES, loose_crop
    from openiai.vision.types import Face
    import cv2

    expr, mask_model = pipe.zoo.get("expression"), pipe.zoo.get("mask")

    def faces_of(items, d):
        for it, ok, box, lm, padded in zip(items, d["found"], d["box"], d["landmarks"], d["padded"]):
            if not ok or not it.train:
                continue
            data = it.path.read_bytes()
            pix = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if padded:
                b = int(round(ad.PAD * max(pix.shape[:2])))
                pix = cv2.copyMakeBorder(pix, b, b, b, b, cv2.BORDER_CONSTANT, value=0)
            yield it, pix, Face(box=box, score=1.0, landmarks=lm)

    cel_items = ad.celeba_hq(testdata)
    grid = [(1.0, 0.0), (1.1, 0.0), (1.2, 0.0), (1.4, 0.0), (1.0, 0.1), (1.2, 0.1)]  # (side, up)
    happy = CLASSES.index("happy")
    scores = {g: [] for g in grid}
    ys = []
    for it, pix, face in faces_of(cel_items, load("celeba_hq", cel_items)):
        ys.append(it.extra)
        crops = [loose_crop(pix, face, k, up) for k, up in grid]
        for g, p in zip(grid, expr.probabilities_of_crops(crops)):
            scores[g].append(p[happy])
    for g in grid:
        print(f"expression loose={g[0]} up={g[1]}: Smiling AUC of p(happy) {roc_auc_score(ys, scores[g]):.6f} (n={len(ys)})")

    m_items = ad.mask_set(testdata)
    crops = (1.2, 1.6, 2.0, 2.6)
    ps = {c: [] for c in crops}
    ys = []
    for it, pix, face in faces_of(m_items, load("mask", m_items)):
        ys.append(it.label)
        for c in crops:
            ps[c].append(mask_model.p_mask(pix, face, c))
    for c in crops:
        print(f"mask crop={c}: train balanced accuracy {ad.balanced_accuracy_at_half(np.array(ps[c]), np.array(ys)):.4f} "
              f"AUC {roc_auc_score(ys, ps[c]):.4f} (n={len(ys)})")


if __name__ == "__main__":
    sys.exit(main())
