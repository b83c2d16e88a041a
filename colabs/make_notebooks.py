"""Writes the reproduction notebooks of colabs/ (run from the repository root or colabs/).

    python colabs/make_notebooks.py                      # write the .ipynb files
    HNCL_QUICK=1 python colabs/make_notebooks.py --execute  # run them all (--out: copies)

Each notebook is generated from the cell sources below (no outputs are stored), so a
change to a notebook is a change to this file. Every notebook:

* opens with an "Open in Colab" badge and an install cell (Colab: the library from
  GitHub and a checkout for `configs/`; locally: `pip install -e .` in a checkout);
* reads `QUICK = os.environ.get("HNCL_QUICK", "0") == "1"`: QUICK shrinks every run so
  the notebook runs top to bottom on a CPU in well under a minute (tests/test_notebooks.py
  executes them so); without it the notebook runs the papers' sizes (a GPU);
* writes its runs under `HNCL_WORKDIR` (default /tmp/hncl_colabs): rerunning a cell
  skips finished runs and resumes interrupted ones (`hncl_jax.sweep.run_grid`).
"""

from __future__ import annotations

import os
import textwrap
import time

import nbformat

GITHUB_REPO = "<org>/hncl_jax"  # the GitHub repository the notebooks install from
HERE = os.path.dirname(os.path.abspath(__file__))


def md(text: str):
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip())


def code(text: str):
    return nbformat.v4.new_code_cell(textwrap.dedent(text).strip())


def header(name: str, title: str, intro: str) -> list:
    badge = (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{GITHUB_REPO}/blob/main/colabs/{name}.ipynb)"
    )
    return [
        md(f"# {title}\n\n{badge}\n\n{textwrap.dedent(intro).strip()}"),
        code(
            f"""
            # Install. On Colab: the library from GitHub, and a checkout for the configs/ folder.
            # Locally: run the notebook inside a checkout after `pip install -e .` (nothing to do here).
            import sys
            HNCL_REPO = "https://github.com/{GITHUB_REPO}"  # @param: your hncl_jax repository or fork
            if "google.colab" in sys.modules:
                if "<org>" in HNCL_REPO:
                    raise ValueError("Set HNCL_REPO above to the URL of the hncl_jax repository to install from.")
                !git clone -q --depth 1 {{HNCL_REPO}} /content/hncl_jax
                !pip install -q -e /content/hncl_jax
            """
        ),
        code(
            """
            import os, sys, time

            # QUICK=1: every run shrunk to run top to bottom on a CPU in well under a minute.
            QUICK = os.environ.get("HNCL_QUICK", "0") == "1"
            # Runs are written here; rerunning a cell skips finished runs and resumes the others.
            # On Colab, mount Google Drive and point this at a Drive folder to keep them.
            WORKDIR = os.environ.get("HNCL_WORKDIR", "/tmp/hncl_colabs")
            for ROOT in (os.getcwd(), os.path.dirname(os.getcwd()), "/content/hncl_jax"):
                if os.path.isdir(os.path.join(ROOT, "configs")):
                    break
            else:
                raise FileNotFoundError("run the notebook inside a checkout of hncl_jax (configs/ is needed)")
            os.chdir(ROOT)
            sys.path.insert(0, ROOT)

            import jax
            import jax.numpy as jnp
            import matplotlib.pyplot as plt
            import numpy as np
            from IPython.display import Markdown, display

            print("devices:", jax.devices(), "| QUICK (tiny sizes)" if QUICK else "| full size")
            """
        ),
    ]


# =========================================================================== theory
THEORY = [
    *header(
        "theory",
        "Theory: the minima of Theorems 2-3, Theorem 1, and CLOP's learning-rate bound",
        """
        Closed forms and small exact computations, no training:

        1. **[HN Thm 2]** the minimum of the SCL/HSCL loss, `ψ_k(−C/(C−1), …)`, over C;
        2. **[HN Thm 3]** the minimum of the UCL loss (an exact binomial expectation) over k,
           and why the paper prints 0.3935 where the exact value is 0.39333;
        3. the library's batched losses at Neural Collapse equal these minima;
        4. **[HN Thm 1]** HSCL ≥ SCL and HUCL ≥ UCL, by exact enumeration of every negative
           k-tuple on a small set, and the library's sampled loss is an unbiased estimate;
        5. **[CLOP Thm 1, §3.1, Fig. 3]** the learning-rate bound over k, the gradient-descent
           experiment (η = 2.0 keeps rank k − 1, η = 2.1 collapses to rank one), and the
           largest non-collapsing η found by bisection;
        6. **[CLOP §3.2, Fig. 4]** minimising cosine similarity collapses k vectors to a
           rank-(k − 1) zero-sum set that is not equiangular.
        """,
    ),
    md("## 1. Theorem 2: the SCL / HSCL minimum over the number of classes C"),
    code(
        """
        from hncl_jax import geometry, losses

        Cs = np.arange(2, 201)
        print(f"InfoNCE, C = 3:   {geometry.scl_lower_bound(3, 256):.5f}   (paper §5.1: 0.2014)")
        print(f"InfoNCE, C = 100: {geometry.scl_lower_bound(100, 256):.5f}   (paper Table 1: 0.3105)")
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(Cs, [geometry.scl_lower_bound(int(c), 256) for c in Cs], label="InfoNCE (mean form, any k)")
        for k in (1, 16, 256):
            ax.plot(Cs, [geometry.scl_lower_bound(int(c), k, psi="infonce_sum") for c in Cs],
                    "--", label=f"InfoNCE sum form, α = 1, k = {k}")
        ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("C"); ax.set_ylabel("minimum loss")
        ax.set_title("Theorem 2: ψ_k(−C/(C−1), …, −C/(C−1))"); ax.legend(fontsize="small"); ax.grid(alpha=0.3)
        plt.show()
        """
    ),
    md(
        """
        ## 2. Theorem 3: the UCL minimum over k

        With C equiprobable latent classes each negative is of another class with
        probability p = (C − 1)/C, so the minimum is `E_{B∼Bin(k,p)} ψ_k(B × −C/(C−1), (k−B) × 0)`.
        For InfoNCE, C = 3, k = 256 it is **0.39333**; the paper prints 0.3935, the value with
        the expectation taken inside the log, which is also the k → ∞ limit (0.39345).
        """
    ),
    code(
        """
        p = 2 / 3
        inside_log = np.log(1 + p * np.exp(-1.5) + (1 - p))
        print(f"C = 3, k = 256: exact {geometry.ucl_lower_bound(3, 256):.5f}; paper 0.3935; "
              f"expectation inside the log {inside_log:.5f}; k → ∞ limit {geometry.ucl_reweighted_limit(3):.5f}")
        ks = np.unique(np.logspace(0, 3.3, 60).astype(int))
        fig, ax = plt.subplots(figsize=(6, 4))
        for C in (3, 10, 100):
            line, = ax.plot(ks, [geometry.ucl_lower_bound(C, int(k)) for k in ks], label=f"C = {C}")
            ax.axhline(geometry.ucl_reweighted_limit(C), color=line.get_color(), ls=":", lw=1)
        ax.set_xscale("log"); ax.set_xlabel("k (negatives)"); ax.set_ylabel("minimum UCL loss")
        ax.set_title("Theorem 3 (dotted: k → ∞ limit)"); ax.legend(); ax.grid(alpha=0.3)
        plt.show()
        """
    ),
    md(
        """
        ## 3. The library's losses at Neural Collapse

        Class means on a simplex ETF, every example at its class mean, a class-balanced batch:
        the batched SCL and HSCL losses equal the Theorem 2 minimum for *every* draw; the
        sampled UCL loss equals the Theorem 3 minimum in expectation over the draws; the
        deterministic `reweighted` estimator gives the k → ∞ limit. HUCL at NC is *above*
        UCL (tilting favours same-class negatives: latent-class collisions), which is why the
        paper has no tight HUCL bound.
        """
    ),
    code(
        """
        C, per, k = 3, 100, 256
        labels = jnp.repeat(jnp.arange(C), per)
        z_nc = geometry.simplex_etf(C)[labels]
        key = jax.random.key(0)
        for setting, beta in [("scl", 0.0), ("hscl", 10.0), ("hscl", 50.0)]:
            value = float(losses.contrastive_loss(z_nc, labels, key, setting=setting, beta=beta, k=k))
            print(f"{setting:5s} β = {beta:4.0f}: {value:.6f}   Theorem 2: {geometry.scl_lower_bound(C, k):.6f}")
        keys = jax.random.split(key, 16 if QUICK else 1000)
        for setting, beta in [("ucl", 0.0), ("hucl", 10.0)]:
            draws = jax.vmap(lambda kk: losses.contrastive_loss(z_nc, labels, kk, setting=setting, beta=beta, k=k))(keys)
            print(f"{setting:5s} β = {beta:4.0f}: mean over {len(keys)} draws {float(draws.mean()):.5f} "
                  f"± {float(draws.std() / np.sqrt(len(keys))):.5f}   Theorem 3: {geometry.ucl_lower_bound(C, k):.5f}")
        rw = float(losses.contrastive_loss(z_nc, labels, setting="ucl", estimator="reweighted"))
        print(f"ucl reweighted (k → ∞): {rw:.5f}   limit: {geometry.ucl_reweighted_limit(C):.5f}")
        """
    ),
    md(
        """
        ## 4. Theorem 1 by exact enumeration: HSCL ≥ SCL and HUCL ≥ UCL

        On a set of n = 9 points (3 classes) with representations drawn at random in the
        unit ball, the exact expected losses are sums over every k-tuple of negatives
        (k = 3: up to 9³ tuples per anchor), weighted by the uniform (SCL/UCL) or tilted
        q(m) ∝ exp(β s) (HSCL/HUCL) probabilities. Theorem 1 says the hard loss is never
        below the plain one, for every representation.
        """
    ),
    code(
        """
        import itertools

        def exact_loss(z, y, k, beta, supervised):
            # E over anchors i, positives j (same class, i included) and k i.i.d. negatives.
            s = z @ z.T
            per_anchor = []
            for i in range(len(y)):
                cand = np.flatnonzero(y != y[i]) if supervised else np.arange(len(y))
                q = np.exp(beta * s[i, cand]); q /= q.sum()
                tuples = np.array(list(itertools.product(range(len(cand)), repeat=k)))
                prob = np.prod(q[tuples], axis=1)                          # (T,)
                t = s[i, cand][tuples][:, None, :] - s[i, y == y[i]][None, :, None]
                psi = np.log1p(np.exp(t).mean(-1))                         # InfoNCE, (T, P)
                per_anchor.append((prob[:, None] * psi).sum(0).mean())
            return float(np.mean(per_anchor))

        rng = np.random.default_rng(0)
        y9 = np.repeat(np.arange(3), 3)
        gaps = {"HSCL − SCL": [], "HUCL − UCL": []}
        for trial in range(5 if QUICK else 100):
            f = rng.normal(size=(9, 2)) * rng.uniform(0.2, 2.0)
            z9 = np.asarray(geometry.normalize(f, "unit_ball"), dtype=np.float64)
            for beta in (1.0, 5.0):
                gaps["HSCL − SCL"].append(exact_loss(z9, y9, 3, beta, True) - exact_loss(z9, y9, 3, 0.0, True))
                gaps["HUCL − UCL"].append(exact_loss(z9, y9, 3, beta, False) - exact_loss(z9, y9, 3, 0.0, False))
        for name, g in gaps.items():
            print(f"{name}: {len(g)} cases, min {min(g):.3e}, max {max(g):.3e}, all ≥ 0: {min(g) >= -1e-12}")
        """
    ),
    code(
        """
        # The library's sampled estimator is unbiased: its mean over many draws matches the exact value.
        z9j, y9j = jnp.asarray(z9, jnp.float32), jnp.asarray(y9)
        keys = jax.random.split(jax.random.key(1), 500 if QUICK else 20000)
        for setting, beta in [("hscl", 5.0), ("hucl", 5.0)]:
            mc = jax.vmap(lambda kk: losses.contrastive_loss(z9j, y9j, kk, setting=setting, beta=beta, k=3))(keys)
            exact = exact_loss(z9, y9, 3, beta, setting == "hscl")
            print(f"{setting} β = 5: exact {exact:.5f}, library mean {float(mc.mean()):.5f} "
                  f"± {float(mc.std() / np.sqrt(len(keys))):.5f} (standard error)")
        """
    ),
    md(
        """
        ## 5. CLOP's learning-rate bound and its gradient-descent experiment

        `geometry.clop_lr_bound(k)` is the closed form printed in [CLOP App. D]
        (2.0333 for k = 30). Two notes (see the `geometry` docstrings): the printed closed
        form has an algebra slip, the exact root of the paper's own inequality is
        (k−1)(2k²−3k+2)/((k−2)(k²−k+1)) (2.0358 for k = 30); and for the experiment's
        dynamics (normalised gradient descent on the total cosine similarity) complete
        collapse sets in exactly above η* = 2(k−1)/(k−2) (2.0714 for k = 30), where the
        mean direction starts to grow relative to the others.
        """
    ),
    code(
        """
        ks = np.arange(3, 101)
        printed = np.array([geometry.clop_lr_bound(int(k)) for k in ks])
        root = (ks - 1) * (2 * ks**2 - 3 * ks + 2) / ((ks - 2) * (ks**2 - ks + 1))
        threshold = 2 * (ks - 1) / (ks - 2)
        i30 = list(ks).index(30)
        print(f"k = 30: printed bound {printed[i30]:.4f}, exact root {root[i30]:.4f}, "
              f"collapse threshold 2(k−1)/(k−2) = {threshold[i30]:.4f}")

        def unit_columns(key, m, k):
            x = jax.random.normal(key, (m, k))
            return x / jnp.linalg.norm(x, axis=0)

        gd = jax.jit(geometry.clop_gradient_descent)
        x0 = unit_columns(jax.random.key(0), 100, 30)
        marks = [0, 5, 20, 50, 100, 200, 400, 1000] if QUICK else [0, 5, 20, 50, 100, 200, 400, 1000, 2000, 4000]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, lr in zip(axes, (2.0, 2.1)):
            x, done = x0, 0
            for j, step in enumerate(marks):
                x, done = gd(x, lr, step - done), step
                sv = np.linalg.svd(np.asarray(x), compute_uv=False)
                ax.plot(np.arange(1, 31), np.maximum(sv, 1e-16), color=plt.cm.coolwarm(j / (len(marks) - 1)),
                        label=f"step {step}" if j in (0, len(marks) - 1) else None)
            ax.set_yscale("log"); ax.set_xlabel("index"); ax.legend(fontsize="small")
            ax.set_title(f"η = {lr}: effective rank {int(geometry.effective_rank(x))}")
            print(f"η = {lr}: effective rank after {marks[-1]} steps: {int(geometry.effective_rank(x))} (k = 30)")
        axes[0].set_ylabel("singular value of X (100 × 30)")
        plt.show()
        """
    ),
    code(
        """
        # Largest η that does not collapse (rank 1) in any of 5 random trials, by bisection.
        def collapses(lr, k, steps, trials=5, m=100):
            xs = jax.vmap(lambda kk: unit_columns(kk, m, k))(jax.random.split(jax.random.key(k), trials))
            out = jax.vmap(lambda x: gd(x, lr, steps))(xs)
            return bool(jnp.any(jax.vmap(geometry.effective_rank)(out) == 1))

        def largest_safe_lr(k, steps, iters):
            lo, hi = 1.0, 6.0   # 1.0 never collapses, 6.0 always does
            for _ in range(iters):
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if collapses(mid, k, steps) else (mid, hi)
            return lo

        k_grid = [3, 10, 30] if QUICK else [3, 5, 10, 20, 30, 50, 100]
        steps, iters = (3000, 10) if QUICK else (20000, 16)
        found = {k: largest_safe_lr(k, steps, iters) for k in k_grid}
        display(Markdown("| k | printed bound | exact root | 2(k−1)/(k−2) | largest non-collapsing η (bisection) |\\n"
                         "| --- | --- | --- | --- | --- |\\n" + "\\n".join(
            f"| {k} | {geometry.clop_lr_bound(k):.4f} | {(k-1)*(2*k*k-3*k+2)/((k-2)*(k*k-k+1)):.4f} | "
            f"{2*(k-1)/(k-2):.4f} | {v:.4f} |" for k, v in found.items())))
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(ks, printed, label="printed bound [CLOP Thm 1]")
        ax.plot(ks, root, "--", label="exact root of eq. 2")
        ax.plot(ks, threshold, ":", label="2(k−1)/(k−2)")
        ax.plot(list(found), list(found.values()), "ko", label="bisection (5 trials)")
        ax.set_xscale("log"); ax.set_xlabel("k"); ax.set_ylabel("learning rate"); ax.legend(); ax.grid(alpha=0.3)
        plt.show()
        """
    ),
    md(
        """
        ## 6. Dimensional collapse of plain cosine minimisation [CLOP §3.2, Fig. 4]

        With a learning rate below the threshold the k vectors converge to a zero-sum set:
        rank k − 1, optimal total similarity, but not the equiangular simplex (the pairwise
        cosines spread around −1/(k−1)).
        """
    ),
    code(
        """
        k = 30
        x = gd(unit_columns(jax.random.key(3), 100, k), 0.5, 300 if QUICK else 2000)
        sv = np.linalg.svd(np.asarray(x), compute_uv=False)
        cos = np.asarray(x.T @ x)[~np.eye(k, dtype=bool)]
        print(f"effective rank {int(geometry.effective_rank(x))} (k − 1 = {k - 1}); ‖mean‖ = {float(jnp.linalg.norm(x.mean(1))):.2e}; "
              f"pairwise cosines {cos.min():.3f} … {cos.max():.3f} (ETF: {-1 / (k - 1):.4f})")
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
        axes[0].semilogy(np.arange(1, k + 1), np.maximum(sv, 1e-16), "o-"); axes[0].set_title("singular values")
        axes[1].hist(cos, bins=40); axes[1].axvline(-1 / (k - 1), color="k", ls="--", label="ETF −1/(k−1)")
        axes[1].set_title("pairwise cosine similarities"); axes[1].legend()
        plt.show()
        """
    ),
]


# =========================================================================== synthetic
SYNTHETIC = [
    *header(
        "synthetic_collapse",
        "Synthetic collapse: SCL, HSCL, UCL, HUCL over β [HN §5.1, Fig. 2]",
        """
        Three Gaussian classes in R^3072 (100 points each, means i.i.d. U[−1, 1]), an MLP to
        d = C − 1 = 2, unit-ball normalisation, InfoNCE with k = 256 negatives, Adam 1e-3,
        the whole set as one batch, 400 epochs; β ∈ {0, 10, 30, 50}; positives by **labels**
        (same class, the anchor included) or by **Gaussian-noise views** (variance 0.01).

        All 16 runs are trained by `hncl_jax.sweep.train_synthetic_grid` in **one compiled
        program** (`jax.vmap` over the runs, `lax.scan` over the steps) with the trainer's own
        train step: each run equals `train_and_evaluate` with `configs/synthetic.py` (checked
        at the end). Seconds on a GPU; QUICK shrinks the data and the network for a CPU.
        """,
    ),
    code(
        """
        from hncl_jax import geometry, sweep

        if QUICK:
            SIZE = dict(num_epochs=150, k=64, dim=256, per_class=50, hidden_sizes=(64,), eval_every=10)
        else:  # the paper's sizes
            SIZE = dict(num_epochs=400, k=256, dim=3072, per_class=100, hidden_sizes=None, eval_every=20)
        BETAS = (10.0, 30.0, 50.0)   # with β = 0 (SCL, UCL)
        res = sweep.train_synthetic_grid(
            betas=BETAS, settings=("scl", "hscl", "ucl", "hucl"), positives=("labels", "noise_views"), **SIZE)
        print(f"{len(res.rows)} runs in {res.seconds:.1f} s (one compiled program, compilation included)")
        display(Markdown(sweep.markdown_table(res.rows, [
            "positives", "setting", "beta", "final_loss", "bound", "gap", "zero_sum", "unit_norm",
            "equal_inner_product", "within_class_variance", "dc_rank", "ncm_acc"])))
        """
    ),
    md(
        """
        **Reading the table.** `bound` is the Theorem 2 minimum (SCL/HSCL) or the Theorem 3
        minimum (UCL; for HUCL it is only a lower bound, since HUCL ≥ UCL by Theorem 1).
        `final_loss` averages the last 10 epochs (the sampled UCL loss fluctuates around its
        expectation). The paper: with label positives SCL, HSCL (every β) and UCL reach their
        minima and Neural Collapse; HUCL does not. With noise views SCL/HSCL still collapse
        to the simplex; UCL/HUCL do not, more so as β grows.
        """
    ),
    code(
        """
        def title(r):
            name = r["setting"].upper() + (f" β={r['beta']:g}" if r["setting"] in ("hscl", "hucl") else "")
            return f"{name}\\nloss {r['final_loss']:.4f} (min {r['bound']:.4f})"

        t = np.linspace(0, 2 * np.pi, 200)
        order = {p: [i for i, r in enumerate(res.rows) if r["positives"] == p] for p in ("labels", "noise_views")}
        ncols = 1 + max(len(v) for v in order.values())
        fig, axes = plt.subplots(2, ncols, figsize=(2.4 * ncols, 5.4))
        for row, (p, idx) in enumerate(order.items()):
            panels = [("initial", res.z_init)] + [(title(res.rows[i]), res.z[i]) for i in idx]
            for ax, (name, z) in zip(axes[row], panels):
                ax.plot(np.cos(t), np.sin(t), color="0.8", lw=0.8)
                ax.scatter(z[:, 0], z[:, 1], c=res.labels, cmap="tab10", s=4, vmin=0, vmax=9)
                ax.set_aspect("equal"); ax.set_xticks([]); ax.set_yticks([]); ax.set_title(name, fontsize=8)
            axes[row][0].set_ylabel(p)
        fig.suptitle("HN Fig. 2: representations after training (top: label positives, bottom: noise views)")
        plt.tight_layout(); plt.show()
        """
    ),
    code(
        """
        fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
        for ax, (p, idx) in zip(axes, order.items()):
            for i in idx:
                line, = ax.plot(res.loss_curves[i], lw=1, label=title(res.rows[i]).split("\\n")[0])
            for b in sorted({res.rows[i]["bound"] for i in idx}):
                ax.axhline(b, color="k", ls="--", lw=0.8)
            ax.set_yscale("log"); ax.set_xlabel("epoch"); ax.set_title(f"training loss ({p}); dashed: minima")
            ax.legend(fontsize="x-small", ncol=2)
        plt.show()
        evals = np.arange(1, res.nc_curves["zero_sum"].shape[1] + 1) * SIZE["eval_every"]
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.5))
        for ax, (m, curves) in zip(axes, res.nc_curves.items()):
            for i in order["labels"]:
                ax.plot(evals, np.maximum(curves[i], 1e-8), label=title(res.rows[i]).split("\\n")[0])
            ax.set_yscale("log"); ax.set_title(m.replace("_", " ") + " (label positives)"); ax.set_xlabel("epoch")
        axes[0].legend(fontsize="x-small"); plt.show()
        """
    ),
    md(
        """
        ### Cross-check: one run of the grid against the trainer

        The same HSCL β = 10 run through `train.train_and_evaluate` (`configs/synthetic.py`,
        the command-line trainer) gives the same final loss.
        """
    ),
    code(
        """
        from configs import synthetic
        from hncl_jax import reporting, train

        c = synthetic.get_config("hscl")
        c.loss.beta, c.loss.k, c.num_epochs = 10.0, SIZE["k"], SIZE["num_epochs"]
        c.dataset_kwargs.dim, c.dataset_kwargs.per_class = SIZE["dim"], SIZE["per_class"]
        if SIZE["hidden_sizes"]:
            c.model_kwargs.hidden_sizes = SIZE["hidden_sizes"]
        c.eval_every_epochs = c.checkpoint_every_epochs = c.num_epochs
        c.plots, c.linear_probe = False, "off"
        wd = f"{WORKDIR}/synthetic_single/hscl_beta10_{'quick' if QUICK else 'full'}"
        train.train_and_evaluate(c, wd)
        single = [r for r in reporting.read_metrics(wd) if "epoch" in r][-1]
        i = next(i for i, r in enumerate(res.rows) if (r["setting"], r["beta"], r["positives"]) == ("hscl", 10.0, "labels"))
        print(f"last-epoch loss: trainer {single['train/epoch_loss']:.6f}, vmapped grid {res.loss_curves[i, -1]:.6f}")
        # Same initialisation, batches and draws: only float reassociation under vmap may differ.
        np.testing.assert_allclose(res.loss_curves[i, -1], single["train/epoch_loss"], rtol=1e-4)
        """
    ),
]


# =========================================================================== cifar
CIFAR = [
    *header(
        "cifar_collapse",
        "Neural and Dimensional Collapse on CIFAR-100, CIFAR-10, Tiny-ImageNet [HN §5.2-5.4, Figs. 3-13, Table 1]",
        """
        The real-data experiments of the hard-negative paper: ResNet-50 (CIFAR stem), d = C − 1,
        InfoNCE with k = 256, batch 512, Adam 1e-3, 400 epochs, SCL/HSCL and UCL/HUCL with
        β ∈ {0, 2, 5, 10, 30} (β = 0 is SCL / UCL). The notebook prepares the data, launches
        (or resumes) every run of the chosen experiments with `hncl_jax.sweep.run_grid`, and
        plots test accuracy and the NC metrics over epochs (Fig. 3), the DC spectra (Fig. 4)
        and the observed SCL/HSCL losses against Theorem 2 (Table 1).

        **Cost.** One run is 400 epochs of ResNet-50 on 50k images (hours on an A100/H100);
        an experiment is 10 runs. Set `EPOCHS` to shorten them; runs resume where they
        stopped, so a Colab session can be reconnected and the cell rerun.

        QUICK: the same code path on scikit-learn's digits with the `:smoke` config (tiny CNN,
        two epochs), no download. `HNCL_DATASET=digits` runs the full digits config (CPU).
        """,
    ),
    code(
        """
        import importlib
        from hncl_jax import evaluation, geometry, reporting, sweep

        DATASET = os.environ.get("HNCL_DATASET", "cifar100")  # cifar100 | cifar10 | tinyimagenet | digits
        DATA_DIR = os.environ.get("TFDS_DATA_DIR")             # None: ~/tensorflow_datasets
        EPOCHS = None                                          # None: the config's (400); e.g. 100 to shorten
        ACC_KEY = "eval/test/z/ncm_acc"                        # the accuracy plotted (nearest class mean)

        def load_config(spec):
            path, _, arg = spec.partition(":")
            return importlib.import_module(path.removesuffix(".py").replace("/", ".")).get_config(arg or None)

        if QUICK:
            DATASET = "digits"
        """
    ),
    md(
        """
        ## Data

        CIFAR is read with `tfds.data_source` (array_record; no TensorFlow needed to read);
        preparing it once needs TensorFlow, which Colab has. Tiny-ImageNet is built by the
        project's own TFDS builder from `tiny-imagenet-200.zip` in `MANUAL_DIR`.
        """
    ),
    code(
        """
        MANUAL_DIR = os.path.expanduser("~/tiny_imagenet_manual")
        if DATASET in ("cifar10", "cifar100"):
            import tensorflow_datasets as tfds
            tfds.builder(DATASET, data_dir=DATA_DIR, file_format="array_record").download_and_prepare()
        elif DATASET == "tinyimagenet":
            os.makedirs(MANUAL_DIR, exist_ok=True)
            if not os.path.exists(f"{MANUAL_DIR}/tiny-imagenet-200.zip"):
                !wget -q -P {MANUAL_DIR} http://cs231n.stanford.edu/tiny-imagenet-200.zip
        print("data ready:", DATASET)
        """
    ),
    md(
        """
        ## The experiments

        Each entry is a base config, overrides and a grid; `RUN` picks the ones to train.
        Fig. 4's near-NC row is in `near_nc_warm_start.ipynb`. Figs. 5-6 (CIFAR-10) and 7
        (Tiny-ImageNet) are these experiments with `HNCL_DATASET=cifar10` / `tinyimagenet`.
        """
    ),
    code(
        """
        HN_GRID = {"loss.name": ["hscl", "hucl"], "loss.beta": [0.0, 2.0, 5.0, 10.0, 30.0]}  # β = 0: SCL, UCL
        base_spec = f"configs/{DATASET}.py" + (":smoke" if QUICK else "")
        EXPERIMENTS = {
            "fig3_fig4_unit_ball": dict(grid=HN_GRID, overrides={}),
            "fig4_unit_sphere": dict(grid=HN_GRID, overrides={"normalization": "unit_sphere"}),
            "fig4_no_normalization": dict(grid=HN_GRID, overrides={"normalization": "none"}),
            "fig8_batch64": dict(grid=HN_GRID, overrides={"batch_size": 64}),
            "fig9_batch32": dict(grid=HN_GRID, overrides={"batch_size": 32}),
            "fig10_fig11_polynomial": dict(grid={"loss.name": ["hscl", "hucl"], "loss.epsilon": [3.0, 5.0, 10.0, 20.0]},
                                           overrides={"loss.hardening": "polynomial"}),
            # SimCLR sampling [App. B.5]: two augmented views; eq. 42's loss (unsupervised) or InfoNCE, k = 256.
            "fig12_simclr_loss": dict(grid={"loss.beta": [0.0, 2.0, 5.0, 10.0, 30.0]},
                                      overrides={"loss.name": "simclr_form", "positives": "views", "views": "simclr"}),
            "fig13_simclr_infonce": dict(grid=HN_GRID, overrides={"positives": "views", "views": "simclr"}),
        }
        # The experiments to train (comma-separated names in HNCL_RUN also work).
        RUN = [r for r in os.environ.get("HNCL_RUN", "fig3_fig4_unit_ball").split(",") if r]
        if QUICK:
            RUN = ["fig3_fig4_unit_ball"]
            EXPERIMENTS["fig3_fig4_unit_ball"]["grid"] = {"loss.name": ["hscl", "hucl"], "loss.beta": [0.0, 10.0]}

        def experiment_config(name):
            base = sweep.apply_assignments(load_config(base_spec), EXPERIMENTS[name]["overrides"])
            if DATASET == "tinyimagenet":
                base.manual_dir = MANUAL_DIR
            if DATA_DIR:
                base.data_dir = DATA_DIR
            if EPOCHS:
                base.num_epochs = EPOCHS
            return base

        results = {}
        for name in RUN:
            root = f"{WORKDIR}/hn_real/{DATASET}{'_quick' if QUICK else ''}/{name}"
            results[name] = sweep.run_grid(experiment_config(name), EXPERIMENTS[name]["grid"], root, verbose=True)
            display(Markdown(f"**{name}**\\n\\n" + sweep.markdown_table(results[name], [
                "run", "epoch", "train/epoch_loss", "train/theorem_bound", ACC_KEY, "nc/train/z/zero_sum",
                "nc/train/z/unit_norm", "nc/train/z/equal_inner_product", "nc/test/z/dc_rank"])))
        """
    ),
    md("## Fig. 3: test accuracy and NC metrics over epochs"),
    code(
        """
        PANELS = [ACC_KEY, "nc/train/z/zero_sum", "nc/train/z/unit_norm", "nc/train/z/equal_inner_product"]

        def label(row):
            beta = row.get("loss.beta", row.get("loss.epsilon"))
            base = {"hscl": "SCL", "hucl": "UCL"}.get(row.get("loss.name"), row.get("loss.name", ""))
            return base if beta in (0, 0.0) else f"H{base} {'ε' if 'loss.epsilon' in row else 'β'}={beta:g}"

        for name, rows in results.items():
            families = {"supervised": [r for r in rows if r.get("loss.name") != "hucl"],
                        "unsupervised": [r for r in rows if r.get("loss.name") == "hucl"]}
            families = {k: v for k, v in families.items() if v}
            fig, axes = plt.subplots(len(PANELS), len(families), figsize=(5.5 * len(families), 11), squeeze=False)
            for col, (fam, runs) in enumerate(families.items()):
                for r in runs:
                    hist = [h for h in reporting.read_metrics(r["workdir"]) if "epoch" in h]
                    for ax, key in zip(axes[:, col], PANELS):
                        ax.plot([h["epoch"] for h in hist], [h.get(key, np.nan) for h in hist], marker=".", label=label(r))
                for ax, key in zip(axes[:, col], PANELS):
                    ax.set_title(f"{fam}: {key}", fontsize=9); ax.set_xlabel("epoch")
                    if key != ACC_KEY:
                        ax.set_yscale("log")
                axes[0, col].legend(fontsize="small")
            fig.suptitle(f"{DATASET}: {name}"); plt.tight_layout(); plt.show()
        """
    ),
    md(
        """
        ## Fig. 4: DC spectra of the final class means

        Each finished run's last checkpoint is restored (`sweep.restore_representations`)
        and the normalised singular values of the class-mean covariance are plotted
        (log scale): Dimensional Collapse shows as values orders of magnitude below 1.
        """
    ),
    code(
        """
        for name, rows in results.items():
            plan = sweep.plan_grid(experiment_config(name), EXPERIMENTS[name]["grid"],
                                   f"{WORKDIR}/hn_real/{DATASET}{'_quick' if QUICK else ''}/{name}")
            fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
            for (assign, cfg, wd), r in zip(plan, rows):
                _, z, y = sweep.restore_representations(cfg, wd, "train")
                spectrum = np.asarray(geometry.dc_spectrum(z, y, int(y.max()) + 1))
                ax = axes[1 if assign.get("loss.name") == "hucl" else 0]
                ax.semilogy(np.arange(1, spectrum.size + 1), np.maximum(spectrum, 1e-12), label=label(r))
            for ax, fam in zip(axes, ("supervised", "unsupervised")):
                ax.set_title(f"{name}: {fam}"); ax.set_xlabel("index"); ax.legend(fontsize="small")
            axes[0].set_ylabel("singular value / largest"); plt.show()
        """
    ),
    md(
        """
        ## Table 1: observed SCL/HSCL loss against the Theorem 2 minimum

        Paper (CIFAR-100, 400 epochs): theory 0.3105; SCL 0.3384; HSCL β = 2, 5, 10, 30:
        0.3603, 0.3106, 0.3107, 0.3222.
        """
    ),
    code(
        """
        PAPER_TABLE1 = {0.0: 0.3384, 2.0: 0.3603, 5.0: 0.3106, 10.0: 0.3107, 30.0: 0.3222}
        rows = [r for r in results.get("fig3_fig4_unit_ball", []) if r.get("loss.name") == "hscl"]
        table = [{"setting": label(r), "theory": r.get("train/theorem_bound"), "observed": r.get("train/epoch_loss"),
                  "paper (CIFAR-100)": PAPER_TABLE1.get(r.get("loss.beta")) if DATASET == "cifar100" else None}
                 for r in rows]
        display(Markdown(sweep.markdown_table(table, ["setting", "theory", "observed", "paper (CIFAR-100)"])))
        """
    ),
]


# =========================================================================== near NC
NEAR_NC = [
    *header(
        "near_nc_warm_start",
        "Near-NC warm start [HN §5.4, Table 2, Fig. 4 row 2]",
        """
        Train HSCL with β = 10 until it nearly attains Neural Collapse (the "near-NC" model),
        then continue from that checkpoint for as many epochs again under ten settings:
        SCL, HSCL β ∈ {2, 5, 10, 30}, UCL, HUCL β ∈ {2, 5, 10, 30}. The paper (CIFAR-100,
        ResNet-50, 400 + 400 epochs) finds the supervised settings stay at NC while HUCL with
        β = 10, 30 leaves it (larger zero-sum and equal inner-product metrics, and DC).

        The warm start is the trainer's `config.init_from` (parameters and batch statistics,
        fresh optimizer at step 0); both stages are `sweep.run_grid` calls, so they resume.
        QUICK: the same code path on a small synthetic set. `HNCL_DATASET=digits` runs it on
        scikit-learn's digits on a CPU.
        """,
    ),
    code(
        """
        import importlib
        from hncl_jax import geometry, sweep

        DATASET = os.environ.get("HNCL_DATASET", "cifar100")  # cifar100 | cifar10 | tinyimagenet | digits | hn_synthetic
        EPOCHS = None   # per stage; None: the config's (400 for the CIFAR configs)

        def load_config(spec):
            path, _, arg = spec.partition(":")
            return importlib.import_module(path.removesuffix(".py").replace("/", ".")).get_config(arg or None)

        if QUICK:
            DATASET = "hn_synthetic"
            base = load_config("configs/synthetic.py:hscl")
            base.dataset_kwargs.dim, base.dataset_kwargs.per_class = 128, 40
            base.model_kwargs.hidden_sizes = (32,)
            base.loss.k, base.num_epochs = 32, 40
        elif DATASET == "hn_synthetic":
            base = load_config("configs/synthetic.py:hscl")
        else:
            base = load_config(f"configs/{DATASET}.py")
            if DATASET in ("cifar10", "cifar100"):
                import tensorflow_datasets as tfds
                tfds.builder(DATASET, file_format="array_record").download_and_prepare()
        base.loss.name, base.loss.beta = "hscl", 10.0
        if EPOCHS:
            base.num_epochs = EPOCHS
        base.eval_every_epochs = base.checkpoint_every_epochs = max(base.num_epochs // 4, 1)
        base.linear_probe, base.plots = "off", False
        ROOT_NC = f"{WORKDIR}/near_nc/{DATASET}{'_quick' if QUICK else ''}"
        """
    ),
    md("## Stage 1: the near-NC model (HSCL, β = 10)"),
    code(
        """
        near = sweep.run_grid(base, {}, f"{ROOT_NC}/stage1")[0]
        NC_KEYS = ["nc/train/z/zero_sum", "nc/train/z/unit_norm", "nc/train/z/equal_inner_product"]
        print({k.rsplit("/", 1)[1]: round(near[k], 6) for k in NC_KEYS})
        """
    ),
    md("## Stage 2: ten settings from the near-NC checkpoint"),
    code(
        """
        STAGE2_EPOCHS = (20 if QUICK else base.num_epochs)
        warm = sweep.apply_assignments(base, {"init_from": near["workdir"], "num_epochs": STAGE2_EPOCHS})
        warm.eval_every_epochs = warm.checkpoint_every_epochs = max(STAGE2_EPOCHS // 4, 1)
        GRID = {"loss.name": ["hscl", "hucl"], "loss.beta": [0.0, 2.0, 5.0, 10.0, 30.0]}  # β = 0: SCL, UCL
        rows = sweep.run_grid(warm, GRID, f"{ROOT_NC}/stage2")
        """
    ),
    md("## Table 2: NC metrics after the second stage (paper: CIFAR-100)"),
    code(
        """
        PAPER = {  # zero-sum, unit-norm, equal inner-product [HN Table 2]
            "near-NC model": (0.012, 1.8e-8, 0.004), "SCL": (0.006, 2.0e-8, 0.007),
            "HSCL β=2": (0.005, 2.2e-8, 0.004), "HSCL β=5": (0.007, 1.9e-8, 0.002),
            "HSCL β=10": (0.007, 2.0e-8, 0.002), "HSCL β=30": (0.004, 1.7e-8, 0.001),
            "UCL": (0.005, 3.9e-4, 0.005), "HUCL β=2": (0.005, 6.1e-4, 0.003),
            "HUCL β=5": (0.004, 1.4e-3, 0.002), "HUCL β=10": (0.093, 1.5e-3, 0.047),
            "HUCL β=30": (0.761, 7.9e-4, 0.586)}

        def setting(r):
            base_name = {"hscl": "SCL", "hucl": "UCL"}[r["loss.name"]]
            return base_name if r["loss.beta"] == 0 else f"H{base_name} β={r['loss.beta']:g}"

        table = [{"setting": "near-NC model", **{k.rsplit("/", 1)[1]: near[k] for k in NC_KEYS}}]
        table += [{"setting": setting(r), **{k.rsplit("/", 1)[1]: r[k] for k in NC_KEYS}} for r in rows]
        for t in table:
            t["paper (zs, un, eip)"] = ", ".join(f"{v:.2g}" for v in PAPER[t["setting"]])
        display(Markdown(sweep.markdown_table(table, ["setting", "zero_sum", "unit_norm", "equal_inner_product",
                                                       "paper (zs, un, eip)"])))
        """
    ),
    md("## Fig. 4, second row: DC spectra after the warm-started training"),
    code(
        """
        plan = sweep.plan_grid(warm, GRID, f"{ROOT_NC}/stage2")
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
        for (assign, cfg, wd), r in zip(plan, rows):
            _, z, y = sweep.restore_representations(cfg, wd, "train")
            spectrum = np.asarray(geometry.dc_spectrum(z, y, int(y.max()) + 1))
            axes[int(assign["loss.name"] == "hucl")].semilogy(np.arange(1, spectrum.size + 1),
                                                         np.maximum(spectrum, 1e-12), marker=".", label=setting(r))
        for ax, fam in zip(axes, ("supervised", "unsupervised")):
            ax.set_title(f"near-NC initialisation: {fam}"); ax.set_xlabel("index"); ax.legend(fontsize="small")
        plt.show()
        """
    ),
]


# =========================================================================== CLOP
CLOP = [
    *header(
        "clop",
        "CLOP: orthonormal prototypes against collapse [CLOP §4-5, Table 3, Figs. 5-7, Table 1]",
        """
        1. **Synthetic** [CLOP §4, Fig. 5, App. B Table 3]: 500 points in R³ on three lines
           through the origin plus noise; a 3-layer MLP to R³; views = noise + random sign
           flip; InfoNCE (NT-Xent), DCL, VICReg and Barlow Twins, each without and with the
           CLOP term on the 10 % labelled points; kNN (k = 5) fit on the labelled 10 % predicts
           the other 90 %; the embeddings in 3-D.
        2. **CIFAR-100** [CLOP §5]: SimCLR framework, ResNet-50, LARS with lr = 0.3·B/256,
           200 epochs; batch sizes 32 … 2048 (Fig. 6), learning rates 0.1 … 10 at B = 1024
           (Fig. 7), λ ∈ {0.1, 0.5, 1, 1.5} with SupCon (Table 1); 10 %, 50 % (InfoNCE +
           linear classifier baseline) and 100 % labels (SupCon baseline); linear-probe
           top-1 / top-5.

        QUICK: a few synthetic epochs and the CIFAR code path on scikit-learn's digits with
        the `:smoke` config.
        """,
    ),
    code(
        """
        import importlib
        from hncl_jax import data, evaluation, sweep

        def load_config(spec):
            path, _, arg = spec.partition(":")
            return importlib.import_module(path.removesuffix(".py").replace("/", ".")).get_config(arg or None)
        """
    ),
    md("## 1. The synthetic experiment"),
    code(
        """
        syn = load_config("configs/clop_synthetic.py")
        LOSSES = ["nt_xent", "dcl", "vicreg", "barlow_twins"]
        if QUICK:
            LOSSES, syn.num_epochs = ["nt_xent"], 10
        syn.eval_every_epochs = syn.checkpoint_every_epochs = syn.num_epochs
        syn.linear_probe, syn.plots = "off", False
        SYN_GRID = {"loss.name": LOSSES, "clop.weight": [0.0, 1.0]}
        SYN_ROOT = f"{WORKDIR}/clop_synthetic{'_quick' if QUICK else ''}"
        syn_rows = sweep.run_grid(syn, SYN_GRID, SYN_ROOT)
        """
    ),
    code(
        """
        PAPER = {"nt_xent": (68.91, 99.89), "dcl": (88.56, 100.0), "vicreg": (98.64, 99.96), "barlow_twins": (82.50, 100.0)}
        embeddings, table = {}, []
        for (assign, cfg, wd), r in zip(sweep.plan_grid(syn, SYN_GRID, SYN_ROOT), syn_rows):
            _, z, y = sweep.restore_representations(cfg, wd, "train")
            labelled = data.labelled_mask(len(y), cfg.label_fraction, cfg.seed)
            # The paper's protocol: kNN (k = 5) fit on the labelled 10 %, scored on the other 90 %.
            acc = evaluation.knn_accuracy(z[labelled], y[labelled], z[~labelled], y[~labelled], 3, k=5, weighted=False)
            name, clop = assign["loss.name"], assign["clop.weight"] > 0
            embeddings[(name, clop)] = (z, y)
            table.append({"loss": name, "CLOP": clop, "kNN acc (unlabelled 90 %)": 100 * acc,
                          "kNN acc (test split)": 100 * r["eval/test/z/knn5_acc"], "paper": PAPER[name][int(clop)]})
        display(Markdown(sweep.markdown_table(table, ["loss", "CLOP", "kNN acc (unlabelled 90 %)", "kNN acc (test split)", "paper"], digits=2)))
        fig = plt.figure(figsize=(3.6 * len(LOSSES), 7))
        for j, name in enumerate(LOSSES):
            for i, clop in enumerate((False, True)):
                z, y = embeddings[(name, clop)]
                ax = fig.add_subplot(2, len(LOSSES), i * len(LOSSES) + j + 1, projection="3d")
                ax.scatter(z[:, 0], z[:, 1], z[:, 2], c=y, cmap="tab10", s=3, vmin=0, vmax=9)
                ax.set_title(f"{name}{' + CLOP' if clop else ''}", fontsize=9)
        plt.show()
        """
    ),
    md(
        """
        ## 2. CIFAR-100 in the SimCLR framework

        Baselines: InfoNCE (NT-Xent) with a linear classifier trained on the labelled
        fraction (10 %, 50 %), and SupCon with all labels; CLOP adds λ·mean(1 − cos(z, c_y))
        over the labelled examples (λ = 1). The linear probe (top-1 / top-5 on the backbone
        features) is fit on the labelled examples only. `RUN` picks the sweeps to train.
        """
    ),
    code(
        """
        DATASET = os.environ.get("HNCL_CLOP_DATASET", "cifar100")  # cifar100 | tinyimagenet
        MANUAL_DIR = os.path.expanduser("~/tiny_imagenet_manual")  # holds tiny-imagenet-200.zip
        BATCHES = [32, 64, 128, 256, 512, 1024, 2048]
        LRS = [0.1, 0.3, 1.0, 3.0, 10.0]
        SEMI, FULL = {"loss.name": "nt_xent"}, {"loss.name": "supcon", "label_fraction": 1.0}
        SWEEPS = {
            "fig6_batch_semi": (SEMI, {"batch_size": BATCHES, "label_fraction": [0.1, 0.5], "clop.weight": [0.0, 1.0]}),
            "fig6_batch_full": (FULL, {"batch_size": BATCHES, "clop.weight": [0.0, 1.0]}),
            "fig7_lr_semi": ({**SEMI, "batch_size": 1024, "optimizer.scale_lr_by_batch": False},
                             {"optimizer.learning_rate": LRS, "label_fraction": [0.1, 0.5], "clop.weight": [0.0, 1.0]}),
            "fig7_lr_full": ({**FULL, "batch_size": 1024, "optimizer.scale_lr_by_batch": False},
                             {"optimizer.learning_rate": LRS, "clop.weight": [0.0, 1.0]}),
            "table1_lambda": ({**FULL, "batch_size": 1024}, {"clop.weight": [0.1, 0.5, 1.0, 1.5]}),
        }
        # The sweeps to train (comma-separated names in HNCL_RUN also work; empty: none).
        RUN = [r for r in os.environ.get("HNCL_RUN", "fig6_batch_semi").split(",") if r]
        spec = "configs/clop_cifar100.py"
        if QUICK:
            DATASET, spec, RUN = "digits", "configs/clop_cifar100.py:smoke", ["fig6_batch_semi"]
            SWEEPS["fig6_batch_semi"] = (SEMI, {"batch_size": [32], "label_fraction": [0.1], "clop.weight": [1.0]})
        elif RUN and DATASET == "tinyimagenet":
            os.makedirs(MANUAL_DIR, exist_ok=True)
            if not os.path.exists(f"{MANUAL_DIR}/tiny-imagenet-200.zip"):
                !wget -q -P {MANUAL_DIR} http://cs231n.stanford.edu/tiny-imagenet-200.zip
        elif RUN:
            import tensorflow_datasets as tfds
            tfds.builder(DATASET, file_format="array_record").download_and_prepare()

        def sweep_config(name):
            c = load_config(spec)
            c.dataset = DATASET
            if DATASET == "tinyimagenet":  # CLOP App. B: 100 epochs, 32 x 32; d >= C = 200 prototypes
                c.num_epochs, c.image_size, c.embed_dim, c.manual_dir = 100, 32, 256, MANUAL_DIR
            return sweep.apply_assignments(c, SWEEPS[name][0])

        clop_results = {}
        for name in RUN:
            clop_results[name] = sweep.run_grid(sweep_config(name), SWEEPS[name][1],
                                                f"{WORKDIR}/clop_{DATASET}{'_quick' if QUICK else ''}/{name}")
            display(Markdown(f"**{name}**\\n\\n" + sweep.markdown_table(clop_results[name], [
                "run", "eval/test/h/probe_top1", "eval/test/h/probe_top5", "nc/test/z/dc_rank"])))
        """
    ),
    code(
        """
        # Figs. 6-7: top-1 / top-5 against the swept value, one line per (labels, CLOP).
        for name, rows in clop_results.items():
            xkey = next(k for k in SWEEPS[name][1] if k in ("batch_size", "optimizer.learning_rate", "clop.weight"))
            fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
            groups = {}
            for r in rows:
                frac = r.get("label_fraction", SWEEPS[name][0].get("label_fraction", 1.0))
                groups.setdefault((frac, r.get("clop.weight", 1.0) > 0), []).append(r)
            for (frac, clop), rs in sorted(groups.items()):
                rs = sorted(rs, key=lambda r: r[xkey])
                for ax, key in zip(axes, ("eval/test/h/probe_top1", "eval/test/h/probe_top5")):
                    ax.plot([r[xkey] for r in rs], [r.get(key, np.nan) for r in rs], "o-" if clop else "s--",
                            label=f"{100 * frac:.0f} % labels, {'CLOP' if clop else 'baseline'}")
            for ax, key in zip(axes, ("top-1", "top-5")):
                ax.set_xscale("log"); ax.set_xlabel(xkey); ax.set_ylabel(key); ax.legend(fontsize="small")
            fig.suptitle(f"{DATASET}: {name}"); plt.show()
        """
    ),
]


NOTEBOOKS = {
    "theory": THEORY,
    "synthetic_collapse": SYNTHETIC,
    "cifar_collapse": CIFAR,
    "near_nc_warm_start": NEAR_NC,
    "clop": CLOP,
}


def build(name: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = NOTEBOOKS[name]
    for i, cell in enumerate(nb.cells):  # stable ids: regenerating gives no spurious diffs
        cell.id = f"{name}-{i:02d}"
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "name": f"{name}.ipynb"},
        "accelerator": "GPU",
    }
    return nb


def execute(name: str, output: str | None = None, timeout: int = 3600) -> nbformat.NotebookNode:
    """Runs colabs/<name>.ipynb top to bottom in this interpreter's "python3" kernel.

    The environment (HNCL_QUICK, HNCL_WORKDIR, HNCL_DATASET, ...) is passed on to the
    kernel. Raises nbclient's CellExecutionError on the first failing cell.

    Args:
      name: one of NOTEBOOKS.
      output: if given, the executed notebook (with its outputs) is written there.
      timeout: seconds allowed per cell.

    Returns:
      the executed notebook.
    """
    import nbclient

    nb = nbformat.read(os.path.join(HERE, f"{name}.ipynb"), as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=timeout, resources={"metadata": {"path": HERE}}
    )
    client.execute()
    if output:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(output, "w") as fh:
            nbformat.write(nb, fh)
    return nb


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--execute", nargs="*", metavar="NAME", help="execute these notebooks (none: all)"
    )
    parser.add_argument("--out", default="/tmp/hncl_executed", help="folder for executed copies")
    args = parser.parse_args()
    if args.execute is not None:
        for name in args.execute or list(NOTEBOOKS):
            start = time.perf_counter()
            path = os.path.join(args.out, f"{name}.ipynb")
            execute(name, path)
            print(f"executed {name} in {time.perf_counter() - start:.0f} s -> {path}")
        return
    for name in NOTEBOOKS:
        nb = build(name)
        nbformat.validate(nb)
        path = os.path.join(HERE, f"{name}.ipynb")
        with open(path, "w") as fh:
            nbformat.write(nb, fh)
        print("wrote", path)


if __name__ == "__main__":
    main()
