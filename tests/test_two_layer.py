"""The batched two-layer network of the epoch-wise double-descent reproduction (Heckel &
Yilmaz's per-layer step sizes): its closed-form GD step and tangent kernel against
autograd, per-layer step sizes and the init's shared directions (the reproduction end to end:
tests/test_epoch_double_descent.py)."""

from __future__ import annotations

import math

import pytest
import torch

from regbench.reproductions import two_layer as tl

SMALL = dict(
    draws=3, n=12, d=5, hidden=8, directions=3, noise=0.3, w_scale=2.0, v_scale=0.5, n_test=7
)


def _loss(x, y, w, v):
    """0.5 * mean (f - y)^2 of one draw, written with plain autograd ops."""
    f = torch.relu(x @ w.T) @ v / math.sqrt(w.shape[0])
    return 0.5 * (f - y).square().mean()


def test_one_batched_gd_step_equals_autograd_step_per_draw():
    data = tl.make_draws(**SMALL, seed=1)
    module = tl.TwoLayer(data, lr=0.5, lr_w_scale=0.7, lr_v_scale=1.3)
    step_w, step_v = module.step_w[:, 0, 0].clone(), module.step_v[:, 0].clone()
    module.gd_step()
    for b in range(SMALL["draws"]):
        w = data["w0"][b].clone().requires_grad_(True)
        v = data["v0"][b].clone().requires_grad_(True)
        gw, gv = torch.autograd.grad(_loss(data["x"][b], data["y"][b], w, v), (w, v))
        assert torch.allclose(module.w[b], w - step_w[b] * gw, rtol=0, atol=1e-12)
        assert torch.allclose(module.v[b], v - step_v[b] * gv, rtol=0, atol=1e-12)
        assert not torch.equal(module.w[b], data["w0"][b])  # both layers moved
        assert not torch.equal(module.v[b], data["v0"][b])


def test_step_size_is_lr_over_the_largest_tangent_kernel_eigenvalue():
    data = tl.make_draws(**SMALL, seed=2)
    lr, n = 0.8, SMALL["n"]
    module = tl.TwoLayer(data, lr=lr, lr_w_scale=1.0, lr_v_scale=0.25)
    for b in range(SMALL["draws"]):
        x, w, v = data["x"][b], data["w0"][b], data["v0"][b]

        def f(w_, v_, x=x):
            return torch.relu(x @ w_.T) @ v_ / math.sqrt(w_.shape[0])

        jw, jv = torch.autograd.functional.jacobian(f, (w, v))  # (n, k, d), (n, k)
        jac = torch.cat([jw.reshape(n, -1), jv], dim=1)
        theta = jac @ jac.T
        k_first, k_out = tl.tangent_kernel(data["x"][b : b + 1], w[None], v[None])
        assert torch.allclose(k_first[0], jw.reshape(n, -1) @ jw.reshape(n, -1).T, atol=1e-12)
        assert torch.allclose(k_out[0], jv @ jv.T, atol=1e-12)
        eta = lr / torch.linalg.eigvalsh(theta / n)[-1]
        assert module.step_w[b, 0, 0].item() == pytest.approx(eta.item(), rel=1e-10)
        assert module.step_v[b, 0].item() == pytest.approx(0.25 * eta.item(), rel=1e-10)


@pytest.mark.parametrize("frozen", ["w", "v"])
def test_a_zero_step_size_freezes_that_layer_exactly(frozen):
    data = tl.make_draws(**SMALL, seed=3)
    scales = {
        "lr_w_scale": 0.0 if frozen == "w" else 1.0,
        "lr_v_scale": 0.0 if frozen == "v" else 1.0,
    }
    module = tl.TwoLayer(data, lr=0.9, **scales)
    mse0 = (tl.forward(data["x"], data["w0"], data["v0"]) - data["y"]).square().mean(1)
    for _ in range(20):
        module.gd_step()
    moving = "v" if frozen == "w" else "w"
    assert torch.equal(getattr(module, frozen), data[f"{frozen}0"])
    assert not torch.equal(getattr(module, moving), data[f"{moving}0"])
    mse = (tl.forward(module.x, module.w, module.v) - module.y).square().mean(1)
    assert (mse < mse0).all()  # the other layer alone still fits


def test_units_share_the_init_directions_so_the_output_layer_kernel_has_that_rank():
    kw = dict(SMALL, n=30, d=6, hidden=40, directions=4)
    data = tl.make_draws(**kw, seed=4)
    w0 = data["w0"][0]
    assert torch.equal(w0[0], w0[4]) and not torch.equal(w0[0], w0[1])
    _, k_out = tl.tangent_kernel(data["x"], data["w0"], data["v0"])
    assert [int(torch.linalg.matrix_rank(k)) for k in k_out] == [4] * kw["draws"]
    # same draws in every dtype; the test targets are the noise-free teacher
    d32 = tl.make_draws(**kw, seed=4, dtype=torch.float32)
    assert torch.allclose(d32["w0"].double(), data["w0"], atol=1e-6)
    theta = torch.linalg.lstsq(data["x_test"][0], data["y_test"][0][:, None]).solution
    assert torch.allclose(data["x_test"][0] @ theta[:, 0], data["y_test"][0], atol=1e-10)


def test_train_records_per_draw_metrics_at_log_spaced_steps():
    from regbench.reproductions.teacher_student import log_steps

    data = tl.make_draws(**SMALL, seed=5)
    records = tl.train(data, 0.9, 1.0, 1.0, steps=30, n_log=5)
    assert [s for s, _ in records] == log_steps(30, 5)
    last = records[-1][1]
    errs = [last[f"draw/{b}/test_err"] for b in range(SMALL["draws"])]
    assert last["test/err"] == pytest.approx(sum(errs) / len(errs))
    assert records[-1][1]["draw/0/train_mse"] < records[0][1]["draw/0/train_mse"]


def test_authors_network_steps_like_autograd_on_the_summed_squared_error():
    """Heckel & Yilmaz's own setting: Linear-ReLU-Linear with biases, full-batch GD on
    sum (f - y)^2 with one step for the first layer and one for the output layer."""
    data = tl.make_authors_draws(3, 12, 5, 8, (1.0, 4.0), 1.0, 0.01, 7, seed=6)
    assert data["v0"].abs().max() <= 0.01 / math.sqrt(8)  # kaiming_uniform(a=sqrt 5) x 0.01
    assert data["b0"].abs().max() <= 1 / math.sqrt(5)  # PyTorch's default bias bound
    module = tl.AuthorsTwoLayer(data, lr_first=1e-3, lr_out=2e-3)
    module.gd_step()
    for b in range(3):
        w, bb, v, c = (data[k][b].clone().requires_grad_(True) for k in ("w0", "b0", "v0", "c0"))
        f = torch.relu(data["x"][b] @ w.T + bb) @ v + c
        grads = torch.autograd.grad((f - data["y"][b]).square().sum(), (w, bb, v, c))
        for got, p, g, lr in zip((module.w, module.b, module.v, module.c), (w, bb, v, c),
                                 grads, (1e-3, 1e-3, 2e-3, 2e-3), strict=True):  # fmt: skip
            assert torch.allclose(got[b], p - lr * g, rtol=0, atol=1e-12)
    # the risk is relative to the zero predictor's: a net that outputs 0 scores exactly 1
    module.w.zero_(), module.b.zero_(), module.v.zero_(), module.c.zero_()
    assert torch.allclose(module.test_error(), torch.ones(3, dtype=torch.float64))
    # inputs have sd geometric from 1 to 4 over the features
    x = tl.make_authors_draws(1, 20_000, 5, 8, (1.0, 4.0), 1.0, 0.01, 1, seed=7)["x"][0]
    assert x.std(0).tolist() == pytest.approx([1, 2**0.5, 2, 2**1.5, 4], rel=0.03)
