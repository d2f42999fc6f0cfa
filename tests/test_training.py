"""The shared training loop: learning, exact resume, NaN guard, safe checkpoints; the losses and PD target."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler

import dataclasses

from conftest import shipped_params
from lines_model.methods.pd import target as progressive
from lines_model.config.students import BaselineCfg
from lines_model.losses import BaselineLoss, LinesLoss, distance, sample_t
from lines_model.students import LinesStudent, build_unet
from lines_model.errors import TrainingDiverged
from lines_model.training import Checkpoint, train
from oracle import GaussianOracle

PARAMS = shipped_params()
STUDENT = dataclasses.replace(
    PARAMS.student,
    init="random",
    block_out_channels=(8, 16),
    down_block_types=("DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
)
RUNTIME = dataclasses.replace(PARAMS.runtime, threads=0)


class Pairs(torch.utils.data.Dataset):
    """Noise N and a 'teacher image' C that is a fixed smooth function of N."""

    def __init__(self, n=64):
        g = torch.Generator().manual_seed(0)
        self.noise = torch.randn(n, 3, 8, 8, generator=g)
        self.clean = torch.tanh(self.noise.mean(1, keepdim=True).expand(-1, 3, -1, -1))

    def __len__(self):
        return len(self.noise)

    def __getitem__(self, i):
        return self.noise[i], self.clean[i]


def _student(seed=0):
    torch.manual_seed(seed)
    return LinesStudent(build_unet(STUDENT, (3, 8, 8)), "direct", t_scale=999.0)


def _cfg(**kw) -> BaselineCfg:
    base = dict(
        lr=3e-3,
        epochs=3,
        batch_size=16,
        warmup_steps=2,
        weight_decay=0.0,
        grad_clip=1.0,
        ema_decay=0.9,
        loss="mse",
        seed=0,
        log_every=10,
        checkpoint_every=1000,
        num_workers=0,
    )
    return BaselineCfg(**{**base, **kw})


def _train(model, loss, data, cfg, ckpt, **kw):
    return train(model, loss, data, cfg, RUNTIME, epochs=cfg.epochs, checkpoint_dir=ckpt, identity={}, **kw)


def test_loss_decreases(tmp_path):
    data = Pairs()
    r = _train(_student(), BaselineLoss("mse"), data, _cfg(epochs=6), tmp_path / "ck")
    with torch.no_grad():
        first = BaselineLoss("mse")(_student(), data.noise, data.clean, torch.Generator())
    assert r.steps == 6 * 4
    assert r.final_loss < 0.7 * first.item()


def test_resume_replays_the_uninterrupted_run(tmp_path):
    data = Pairs()
    loss = LinesLoss("mse", "uniform")
    full = _train(_student(), loss, data, _cfg(), tmp_path / "a")
    # Stop after 5 steps (mid-epoch: 4 steps per epoch), then resume from that checkpoint.
    part = _cfg(checkpoint_every=5)
    with pytest.raises(KeyboardInterrupt):
        calls = {"n": 0}

        def stopping_loss(net, n, c, g):
            calls["n"] += 1
            if calls["n"] > 5:
                raise KeyboardInterrupt
            return loss(net, n, c, g)

        _train(_student(), stopping_loss, data, part, tmp_path / "b")
    resumed = _train(_student(seed=1), loss, data, part, tmp_path / "b")
    assert resumed.steps == full.steps == 12
    for p, q in zip(full.ema_model.parameters(), resumed.ema_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def _logged(folder: Path) -> tuple[list[float], int]:
    """The step column of a dvclive loss curve, and metrics.json's "step"."""
    import json

    from lines_model.report import read_curve

    steps, _ = read_curve(folder / "plots" / "metrics" / "train" / "loss.tsv")
    return steps, json.loads((folder / "metrics.json").read_text())["step"]


def _live(folder: Path):
    from dvclive import Live

    return Live(str(folder), save_dvc_exp=False, dvcyaml=None)


def _end(live, result) -> None:
    live.log_metric("final_loss", result.final_loss, plot=False)  # as the methods end their logs
    live.end()


def test_curves_are_logged_at_the_optimizer_step(tmp_path):
    # 12 steps, a row every 5: the rows sit at steps 5 and 10, not at dvclive's row numbers 0 and 1.
    live = _live(tmp_path / "live")
    _end(live, _train(_student(), BaselineLoss("mse"), Pairs(), _cfg(log_every=5), tmp_path / "ck", live=live))
    assert _logged(tmp_path / "live") == ([5.0, 10.0], 10)
    # A resumed run first writes the rows of the steps before its checkpoint, at their steps too.
    loss, part = BaselineLoss("mse"), _cfg(log_every=3, checkpoint_every=7)
    calls = {"n": 0}

    def stopping_loss(net, n, c, g):
        calls["n"] += 1
        if calls["n"] > 7:
            raise KeyboardInterrupt
        return loss(net, n, c, g)

    with pytest.raises(KeyboardInterrupt):
        _train(_student(), stopping_loss, Pairs(), part, tmp_path / "resumed", live=_live(tmp_path / "first"))
    live = _live(tmp_path / "second")
    _end(live, _train(_student(), loss, Pairs(), part, tmp_path / "resumed", live=live))
    assert _logged(tmp_path / "second") == ([3.0, 6.0, 9.0, 12.0], 12)


def test_nan_loss_stops_and_keeps_checkpoint(tmp_path):
    data = Pairs()
    n = {"k": 0}

    def exploding(net, noise, clean, g):
        n["k"] += 1
        out = BaselineLoss("mse")(net, noise, clean, g)
        return out * float("nan") if n["k"] == 4 else out

    with pytest.raises(TrainingDiverged, match="loss is nan at step 3"):
        _train(_student(), exploding, data, _cfg(checkpoint_every=2), tmp_path / "ck")
    assert '"step": 2' in (tmp_path / "ck" / "state.json").read_text()


def test_pickle_payload_in_checkpoint_is_refused(tmp_path):
    data = Pairs()
    _train(_student(), BaselineLoss("mse"), data, _cfg(epochs=1), tmp_path / "ck")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"opt": Payload(), "sched": {}}, tmp_path / "ck" / "optimizer.pt")
    with pytest.raises(pickle.UnpicklingError):
        _train(_student(), BaselineLoss("mse"), data, _cfg(epochs=1), tmp_path / "ck")
    assert not marker.exists()


def test_checkpoint_from_other_params_is_ignored(tmp_path):
    ck = Checkpoint(tmp_path, "abc")
    (tmp_path / "state.json").write_text('{"fingerprint": "other", "step": 3}')
    assert ck.load(None, None, None, None) is None


def test_lines_input_lies_on_the_line():
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x, t):
            seen["x"], seen["t"] = x, t
            return type("O", (), {"sample": x})()

    n, c = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    LinesLoss("mse", "uniform")(LinesStudent(Spy(), "direct", t_scale=1000.0), n, c, torch.Generator().manual_seed(0))
    t = seen["t"] / 1000.0
    torch.testing.assert_close(seen["x"], t.view(-1, 1, 1, 1) * c + (1 - t.view(-1, 1, 1, 1)) * n)
    BaselineLoss("mse")(LinesStudent(Spy(), "direct", t_scale=1000.0), n, c, torch.Generator())
    assert torch.equal(seen["x"], n) and torch.all(seen["t"] == 0)


@pytest.mark.parametrize(
    "dist, mean, frac_below_01",
    # uniform: E t = 1/2, P(t < .1) = .1. logit-normal: P(t < .1) = Phi(logit .1) = Phi(-2.197) = .014.
    # Beta(1/2, 1/2) (arcsine): P(t < .1) = (2/pi) asin(sqrt .1) = .205.
    [("uniform", 0.5, 0.1), ("logit_normal", 0.5, 0.014), ("beta", 0.5, 0.205)],
)
def test_t_distributions_have_their_stated_shape(dist, mean, frac_below_01):
    t = sample_t(100_000, dist, torch.Generator().manual_seed(0))
    assert t.min() >= 0 and t.max() <= 1
    assert abs(t.mean().item() - mean) < 0.005
    assert abs((t < 0.1).float().mean().item() - frac_below_01) < 0.005


def test_pseudo_huber_is_quadratic_near_zero_and_linear_far_away():
    d = 3 * 4 * 4
    c = 0.00054 * d**0.5
    small, big = torch.full((2, 3, 4, 4), 1e-5), torch.full((2, 3, 4, 4), 10.0)
    zero = torch.zeros(2, 3, 4, 4)
    # sqrt(|r|^2 + c^2) - c: ~ |r|^2 / 2c for |r| << c, ~ |r| - c for |r| >> c.
    torch.testing.assert_close(distance(small, zero, "huber"), torch.tensor(d * 1e-10 / (2 * c)), rtol=1e-3, atol=0)
    torch.testing.assert_close(distance(big, zero, "huber"), torch.tensor(10.0 * d**0.5 - c), rtol=1e-5, atol=0)
    assert distance(big, zero, "mse") == 100.0 and distance(big, zero, "l1") == 10.0


def test_pd_grids_nest():
    for n in (1, 2, 4, 8, 16, 32):
        assert progressive.grid(n) == progressive.grid(2 * n)[::2]
        assert progressive.grid(n)[0] == 999


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_pd_target_reproduces_two_teacher_steps(prediction):
    """A student that outputs the PD target exactly makes one DDIM step land on two teacher steps."""
    cfg = dict(DDPMScheduler(prediction_type=prediction, clip_sample=False).config)
    teacher = GaussianOracle(cfg, 0.2, 0.4)
    sch = progressive.Schedule(cfg)
    N, n = 4, 256
    fine = progressive.grid(2 * N) + [-1]
    clean = 0.2 + 0.4 * torch.randn(n, 3, 4, 4, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    captured = {}

    class Student(torch.nn.Module):
        def forward(self, z, t):
            captured["z"], captured["t"] = z, t
            return type("O", (), {"sample": torch.zeros_like(z)})()

    class Grab:
        pass

    loss = progressive.PDLoss(teacher, prediction, "v_prediction", cfg, N, "mse")
    import lines_model.methods.pd.target as P

    orig = P.distance
    P.distance = lambda out, target, kind: captured.setdefault("target", target).sum() * 0
    try:
        loss(Student(), None, clean.float(), g)
    finally:
        P.distance = orig
    z, t, v = captured["z"].double(), captured["t"], captured["target"].double()
    # Student step from t to t'' with the target v, done by hand.
    x_hat, eps_hat = sch.to_x_eps(v.float(), z.float(), t, "v_prediction")
    idx = torch.tensor([fine.index(int(tt)) for tt in t])
    t_next = torch.tensor(fine)[idx + 2]
    one = torch.where((t_next < 0).view(-1, 1, 1, 1), x_hat, sch.ddim_step(x_hat, eps_hat, t_next.clamp(min=0)))
    # Two teacher steps.
    t_mid = torch.tensor(fine)[idx + 1]
    x1, e1 = sch.to_x_eps(teacher(z.float(), t).sample, z.float(), t)
    z1 = sch.ddim_step(x1, e1, t_mid)
    x2, e2 = sch.to_x_eps(teacher(z1, t_mid).sample, z1, t_mid)
    two = torch.where((t_next < 0).view(-1, 1, 1, 1), x2, sch.ddim_step(x2, e2, t_next.clamp(min=0)))
    torch.testing.assert_close(one.float(), two.float(), rtol=0, atol=2e-4)


def test_pd_targets_stay_fp32_under_bf16_autocast(tiny_teacher, monkeypatch):
    """Training under bf16 autocast must not round the teacher's steps: the target divides by
    alpha'' - (sigma''/sigma) alpha and would amplify the rounding (up to 10x on a cosine schedule)."""
    from lines_model.teachers import load_teacher

    teacher = load_teacher(str(tiny_teacher))
    cfg = teacher.scheduler_config
    targets = []
    monkeypatch.setattr(progressive, "distance", lambda out, target, kind: targets.append(target) or out.sum() * 0)

    class Student(torch.nn.Module):
        def forward(self, z, t):
            return type("O", (), {"sample": torch.zeros_like(z)})()

    clean = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    loss = progressive.PDLoss(teacher.unet, cfg["prediction_type"], "v_prediction", cfg, 2, "mse")
    loss(Student(), None, clean, torch.Generator().manual_seed(1))
    t = torch.full((8,), 500)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss(Student(), None, clean, torch.Generator().manual_seed(1))
        rounded = teacher.unet(clean, t).sample.float()
    assert not torch.equal(rounded, teacher.unet(clean, t).sample), "autocast rounds a plain teacher call"
    assert targets[1].dtype == torch.float32
    torch.testing.assert_close(targets[1], targets[0], rtol=0, atol=0)


def test_pd_sampler_converges_to_the_oracle_endpoint():
    cfg = dict(
        DDPMScheduler(prediction_type="v_prediction", beta_schedule="squaredcos_cap_v2", clip_sample=False).config
    )
    oracle = GaussianOracle(cfg, 0.1, 0.3)
    noise = torch.randn(64, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    exact = oracle.endpoint(noise, 999)
    errs = [(progressive.sample(oracle, cfg, noise, k) - exact).pow(2).mean().sqrt().item() for k in (4, 256)]
    # Measured: 0.140 at 4 steps, 0.0028 at 256 steps (first-order convergence, as DDIM should).
    assert errs[1] < 0.05 * errs[0] and errs[1] < 0.005


def test_ddp_two_processes_train_in_step(tmp_path):
    """A few DDP steps with 2 CPU processes (gloo): both ranks end with the same weights."""
    import os
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(
        "import sys, torch\n"
        "sys.path.insert(0, %r)\n"
        "from test_training import Pairs, _student, _cfg, _train\n"
        "from lines_model import runtime\n"
        "from lines_model.losses import LinesLoss\n"
        "st = runtime.state()\n"
        "r = _train(_student(), LinesLoss('mse', 'uniform'), Pairs(), _cfg(epochs=2), sys.argv[1] + "
        "f'/ck{st.process_index}')\n"
        "torch.save({k: v for k, v in r.ema_model.state_dict().items()}, sys.argv[1] + f'/w{st.process_index}.pt')\n"
        "print('steps', r.steps)\n" % str(Path(__file__).parent)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29544",
            str(script),
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    # 64 pairs, batch 16 per process, 2 processes: 2 steps per epoch.
    assert "steps 4" in r.stdout
    a = torch.load(tmp_path / "w0.pt", weights_only=True)
    b = torch.load(tmp_path / "w1.pt", weights_only=True)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
