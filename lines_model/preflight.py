"""Checks that need the teacher or the file system, run by a stage before it does any work.

lines_model.config rejects what a params file says on its own (types, sets, ranges, cross-key rules);
what can only be judged against the teacher's configs (image size, number of timesteps,
log-SNR range) or against files that must exist is checked here, reading config files only.
Every failure is a ConfigError naming the key. A method's own checks are its `check` (methods/).
"""

from __future__ import annotations

from pathlib import Path


from lines_model import noise_schedule
from lines_model.config import Params
from lines_model.errors import ConfigError
from lines_model.files import read_json
from lines_model.samplers import log_snr
from lines_model.teachers import read_configs


def check(params: Params) -> None:
    unet_cfg, sched_cfg = read_configs(params.teacher.model, params.teacher.revision)
    size = unet_cfg.get("sample_size", 0)
    size = size if isinstance(size, int) else size[0]
    T = sched_cfg["num_train_timesteps"]
    p, e = params.pairs, params.evaluate
    if p.steps > T:
        raise ConfigError(f"pairs.steps: {p.steps} steps exceed the teacher's {T} training timesteps")
    if p.sampler == "dpmsolver++":
        lam = log_snr(noise_schedule.ddpm(sched_cfg).alphas_cumprod)
        if p.lambda_min is not None and not lam[-1] < p.lambda_min < lam[0]:
            raise ConfigError(
                f"pairs.lambda_min: {p.lambda_min} lies outside the teacher's log-SNR range ({lam[-1]:.2f}, "
                f"{lam[0]:.2f})"
            )
    if params.student.init == "random":
        params.student.check_image_size(size)
    if e.feature_extractor == "shapes-features":
        folder = Path(e.feature_dir)
        if not (folder / "config.json").exists():
            raise ConfigError(f"evaluate.feature_dir: {folder / 'config.json'} not found")
        net_size = read_json(folder / "config.json", "the shapes feature net's config").get("image_size")
        if not isinstance(net_size, int):
            raise ConfigError(
                f"evaluate.feature_dir: {folder / 'config.json'} gives no image_size; not a shapes feature net's config"
            )
        if net_size != size:
            raise ConfigError(
                f"evaluate.feature_extractor: shapes-features takes {net_size}x{net_size} images, the teacher "
                f"makes {size}x{size}"
            )
    for key, path in (("evaluate.feature_weights", e.feature_weights), ("evaluate.data_reference", e.data_reference)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{key}: file {path} not found")
