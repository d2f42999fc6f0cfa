"""The shared training loop: learning, exact resume, NaN guard, safe checkpoints; the losses and PD target."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler

from lines_model import progressive
from lines_model.config import RuntimeCfg, StudentCfg, TrainCfg
from lines_model.losses import BaselineLoss, LinesLoss, sample_t
from lines_model.oracle import GaussianOracle
from lines_model.students import build_student
from lines_model.training import Checkpoint, TrainingDiverged, train

STUDENT = StudentCfg(block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8)


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
    return build_student(STUDENT, (3, 8, 8))


def _cfg(**kw):
    base = dict(lr=3e-3, epochs=3, batch_size=16, warmup_steps=2, ema_decay=0.9, checkpoint_every=1000)
    return TrainCfg(**{**base, **kw})


def test_loss_decreases(tmp_path):
    data = Pairs()
    r = train(_student(), BaselineLoss(), data, _cfg(epochs=6), RuntimeCfg(), checkpoint_dir=tmp_path / "ck", fingerprint_extra={})
    with torch.no_grad():
        first = BaselineLoss()(_student(), data.noise, data.clean, torch.Generator())
    assert r.steps == 6 * 4
    assert r.final_loss < 0.7 * first.item()


def test_resume_replays_the_uninterrupted_run(tmp_path):
    data = Pairs()
    loss = LinesLoss()
    full = train(_student(), loss, data, _cfg(), RuntimeCfg(), checkpoint_dir=tmp_path / "a", fingerprint_extra={})
    # Stop after 5 steps (mid-epoch: 4 steps per epoch), then resume from that checkpoint.
    part = _cfg(checkpoint_every=5)
    with pytest.raises(KeyboardInterrupt):
        calls = {"n": 0}

        def stopping_loss(net, n, c, g):
            calls["n"] += 1
            if calls["n"] > 5:
                raise KeyboardInterrupt
            return loss(net, n, c, g)

        train(_student(), stopping_loss, data, part, RuntimeCfg(), checkpoint_dir=tmp_path / "b", fingerprint_extra={})
    resumed = train(_student(seed=1), loss, data, part, RuntimeCfg(), checkpoint_dir=tmp_path / "b", fingerprint_extra={})
    assert resumed.steps == full.steps == 12
    for p, q in zip(full.ema_model.parameters(), resumed.ema_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_nan_loss_stops_and_keeps_checkpoint(tmp_path):
    data = Pairs()
    n = {"k": 0}

    def exploding(net, noise, clean, g):
        n["k"] += 1
        out = BaselineLoss()(net, noise, clean, g)
        return out * float("nan") if n["k"] == 4 else out

    with pytest.raises(TrainingDiverged, match="loss is nan at step 3"):
        train(_student(), exploding, data, _cfg(checkpoint_every=2), RuntimeCfg(), checkpoint_dir=tmp_path / "ck", fingerprint_extra={})
    assert '"step": 2' in (tmp_path / "ck" / "state.json").read_text()


def test_pickle_payload_in_checkpoint_is_refused(tmp_path):
    data = Pairs()
    train(_student(), BaselineLoss(), data, _cfg(epochs=1), RuntimeCfg(), checkpoint_dir=tmp_path / "ck", fingerprint_extra={})
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"opt": Payload(), "sched": {}}, tmp_path / "ck" / "optimizer.pt")
    with pytest.raises(pickle.UnpicklingError):
        train(_student(), BaselineLoss(), data, _cfg(epochs=1), RuntimeCfg(), checkpoint_dir=tmp_path / "ck", fingerprint_extra={})
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
    LinesLoss(t_scale=1000.0)(Spy(), n, c, torch.Generator().manual_seed(0))
    t = seen["t"] / 1000.0
    torch.testing.assert_close(seen["x"], t.view(-1, 1, 1, 1) * c + (1 - t.view(-1, 1, 1, 1)) * n)
    BaselineLoss()(Spy(), n, c, torch.Generator())
    assert torch.equal(seen["x"], n) and torch.all(seen["t"] == 0)


@pytest.mark.parametrize("dist", ["uniform", "logit_normal", "beta"])
def test_t_distributions_in_unit_interval(dist):
    t = sample_t(10_000, dist, torch.Generator().manual_seed(0))
    assert t.min() >= 0 and t.max() <= 1 and 0.45 < t.mean() < 0.55


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

    loss = progressive.ProgressiveLoss(teacher, prediction, "v_prediction", cfg, N, "mse")
    import lines_model.progressive as P

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


def test_pd_sampler_converges_to_the_oracle_endpoint():
    cfg = dict(DDPMScheduler(prediction_type="v_prediction", beta_schedule="squaredcos_cap_v2", clip_sample=False).config)
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
        "from test_training import Pairs, _student, _cfg\n"
        "from lines_model import runtime\n"
        "from lines_model.config import RuntimeCfg\n"
        "from lines_model.losses import LinesLoss\n"
        "from lines_model.training import train\n"
        "st = runtime.state()\n"
        "r = train(_student(), LinesLoss(), Pairs(), _cfg(epochs=2), RuntimeCfg(), checkpoint_dir=sys.argv[1] + f'/ck{st.process_index}', fingerprint_extra={})\n"
        "torch.save({k: v for k, v in r.ema_model.state_dict().items()}, sys.argv[1] + f'/w{st.process_index}.pt')\n"
        "print('steps', r.steps)\n" % str(Path(__file__).parent)
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29544", str(script), str(tmp_path)],
        env=env, capture_output=True, text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    # 64 pairs, batch 16 per process, 2 processes: 2 steps per epoch.
    assert "steps 4" in r.stdout
    a = torch.load(tmp_path / "w0.pt", weights_only=True)
    b = torch.load(tmp_path / "w1.pt", weights_only=True)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
