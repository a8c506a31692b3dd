"""Tests of spurnb.losses against an independent NumPy implementation written with explicit loops.

The NumPy code below follows the paper's formulas (arXiv 2304.03916, Section 3; paper mode) and the list of quirks of the
reference implementation (official mode) directly, index by index; it shares no code with spurnb.losses.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spurnb.losses import LossWeights, multimodal_loss, sim_contrast


# ---------------------------------------------------------------- independent reference (NumPy, loops)
def cos(u, v): return float(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)))

def logsumexp(x): m = max(x); return m + math.log(sum(math.exp(v - m) for v in x))

def ce(logits, t): return logsumexp(logits) - logits[t]

def np_sim_contrast(F1, F2, l1, l2):
    out = []
    for i in range(len(F1)):
        pos = sum(cos(F1[i], F2[j]) for j in range(len(F2)) if l1[i] == l2[j]) / len(F2)
        neg = sum(cos(F1[i], F2[j]) for j in range(len(F2)) if l1[i] != l2[j]) / len(F2)
        out.append(-pos + neg)
    return out

def np_terms(z, y, a, e, s, r, tau, mode):
    B = len(z); T, C, D = e.shape; A = r.shape[1]
    e_mean = [sum(e[t, c] for t in range(T)) / T for c in range(C)]
    e_bar = [v / np.linalg.norm(v) for v in e_mean]
    L = [[tau * float(np.dot(z[i], e_mean[y[j]])) for j in range(B)] for i in range(B)]
    clip = [0.5 * (ce(L[i], i) + ce([L[j][i] for j in range(B)], i)) for i in range(B)]
    ce_ = [ce([tau * float(np.dot(z[i], e_bar[c])) for c in range(C)], y[i]) for i in range(B)]
    # rows in template-major order: row index t*C + c holds e[t, c]
    rows = [e[t, c] for t in range(T) for c in range(C)]
    srows = [s[t, k] for t in range(s.shape[0]) for k in range(s.shape[1])]
    r_mean = np.stack([sum(r[t, k] for t in range(r.shape[0])) / r.shape[0] for k in range(A)])
    if mode == "paper":
        vc = np_sim_contrast(z, z, y, y)
        u = np_sim_contrast(rows, rows, [c for t in range(T) for c in range(C)], [c for t in range(T) for c in range(C)])
        lc = [sum(u[t * C + y[i]] for t in range(T)) / T for i in range(B)]
        ls = [sum(abs(cos(e[t, y[i]], q)) for t in range(T) for q in srows) / (T * len(srows)) for i in range(B)]
        r_bar = np.stack([v / np.linalg.norm(v) for v in r_mean])
    else:
        vc = [-sum(cos(z[i], z[j]) for j in range(B)) / B for i in range(B)]
        lab = [row // T for row in range(T * C)]               # class-major labels
        u = np_sim_contrast(rows, rows, lab, lab)
        per_t = [sum(u[t * C + c] for c in range(C)) / C for t in range(T)]
        lc = [per_t[y[i]] for i in range(B)]
        u1 = [sum(abs(cos(p, q)) for q in srows) / len(srows) for p in rows]
        u2 = [sum(abs(cos(p, q)) for q in rows) / len(rows) for p in rows]
        ls = [sum(u1[y[i] * C + c] for c in range(C)) / C + sum(u2[y[i] * C + c] for c in range(C)) / C for i in range(B)]
        r_bar = r_mean / np.sqrt((r_mean ** 2).sum())
    vs = [ce([tau * float(np.dot(z[i], r_bar[k])) for k in range(A)], a[i]) for i in range(B)]
    return dict(clip=clip, ce=ce_, vc=vc, lc=lc, ls=ls, vs=vs)


def unit(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


@pytest.mark.parametrize("mode", ["paper", "official"])
@pytest.mark.parametrize("B,T,C,A,seed", [(2, 2, 2, 2, 0), (3, 3, 2, 2, 1), (4, 4, 3, 2, 2), (4, 3, 3, 3, 3)])
def test_terms_match_numpy(mode, B, T, C, A, seed):
    z, e, s, r = unit(B, 5, seed=seed), unit(T, C, 5, seed=seed + 10), unit(T, A, 5, seed=seed + 20), unit(T, A, 5, seed=seed + 30)
    y = torch.arange(B) % C; a = (torch.arange(B) + 1) % A
    tau = 3.7
    w = LossWeights(w_clip=0.5, w_ce=0.3, w_lang=0.7, w_img=1.3, w_spur=0.9, w_vs=1.1)
    out = multimodal_loss(z, y, a, e, s, r, tau, w, mode)
    ref = np_terms(z.numpy(), y.tolist(), a.tolist(), e.numpy(), s.numpy(), r.numpy(), tau, mode)
    for k, v in ref.items():
        assert out[k].shape == (B,), k
        np.testing.assert_allclose(out[k].numpy(), v, rtol=1e-9, atol=1e-9, err_msg=f"{mode} {k}")
    total = [0.5 * ref["clip"][i] + 0.3 * ref["ce"][i] + 0.7 * (ref["lc"][i] + 0.9 * ref["ls"][i]) + 1.3 * ref["vc"][i]
             + 1.1 * ref["vs"][i] for i in range(B)]
    np.testing.assert_allclose(out["total"].numpy(), total, rtol=1e-9)


def test_hand_values_two_samples():
    "Numbers worked out on paper: 2-D, one template, two opposite classes, images on their class text."
    e = torch.tensor([[[1., 0.], [-1., 0.]]]); z = torch.tensor([[1., 0.], [-1., 0.]]); y = torch.tensor([0, 1])
    s = torch.tensor([[[0.6, 0.8], [0.6, -0.8]]]); a = torch.tensor([0, 1])
    o = multimodal_loss(z, y, a, e, s, s, 2.0, LossWeights(w_ce=1, w_vs=1), "paper")
    # logits [[2, −2], [−2, 2]] → CE = log(1 + e^{−4}) in both directions
    torch.testing.assert_close(o["clip"], torch.full((2,), math.log1p(math.exp(-4.0))))
    torch.testing.assert_close(o["ce"], torch.full((2,), math.log1p(math.exp(-4.0))))
    torch.testing.assert_close(o["ls"], torch.full((2,), 0.6))        # |cos(class, attr)| = 0.6 for every pair
    # lc and vc: each row has itself (+1) as its only positive and the other (−1) as negative: −1/2 + (−1/2)
    torch.testing.assert_close(o["lc"], torch.tensor([-1., -1.]))
    torch.testing.assert_close(o["vc"], torch.tensor([-1., -1.]))
    # vs: r̄ rows are unit; image 0 logits 2·(0.6, 0.6) tie → log 2; image 1 logits 2·(−0.6, −0.6) → log 2
    torch.testing.assert_close(o["vs"], torch.full((2,), math.log(2)))
    # official, with y = (0, 0) because T = 1 template and official indexes template rows with y
    y0 = torch.tensor([0, 0])
    o = multimodal_loss(z, y0, a, e, s, s, 2.0, None, "official")
    torch.testing.assert_close(o["vc"], torch.zeros(2))                # −(1 + (−1))/2
    torch.testing.assert_close(o["ls"], torch.full((2,), 0.6 + 1.0))   # + mean |cos| of class prompts with themselves
    # official lc with T = 1: labels (0, 1) match the rows, per-row −1, mean over the last axis −1
    torch.testing.assert_close(o["lc"], torch.tensor([-1., -1.]))
    # official vs: Frobenius norm of [[0.6, 0.8], [0.6, −0.8]] is √2 → logits for image 0: 2·(0.6, 0.6)/√2 → tie
    torch.testing.assert_close(o["vs"], torch.full((2,), math.log(2)))


def test_sim_contrast_divides_by_full_count():
    v = torch.tensor([[1., 0.], [1., 0.], [0., 1.], [-1., 0.]]); lab = torch.tensor([0, 0, 0, 1])
    pos, neg = sim_contrast(v, v, lab, lab, parts=True)
    torch.testing.assert_close(pos[0], torch.tensor((1 + 1 + 0) / 4))
    torch.testing.assert_close(neg[0], torch.tensor(-1 / 4))


def test_default_weights_and_recipe_names():
    z, e = unit(2, 4, seed=0).float(), unit(2, 2, 4, seed=1).float(); y = torch.tensor([0, 1]); a = torch.tensor([1, 0])
    d = multimodal_loss(z, y, a, e, e, e, 10.0)
    n = multimodal_loss(z, y, a, e, e, e, 10.0, "lc+vc+ls")
    torch.testing.assert_close(d["total"], n["total"])
    torch.testing.assert_close(d["total"], d["clip"] + d["lc"] + d["ls"] + d["vc"])
    v = multimodal_loss(z, y, a, e, e, e, 10.0, "lc+vc+vs")
    torch.testing.assert_close(v["total"], v["clip"] + v["lc"] + v["vc"] + v["vs"])
