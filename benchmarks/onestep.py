"""Section 3: how much faster a one-step student is than the teacher's pair sampler, on this machine.

Teacher and student are timed interleaved (lines_model.timing.time_interleaved): round by round
on the same noise, so that a load change on the machine affects both alike instead of the ratio.
Each ratio comes with the interquartile range of its per-round values, and a timing whose rounds
disagree or whose machine was busy is flagged (benchmarks.common.note_timing). Every key carries the
batch size it was measured at.
"""

from __future__ import annotations

from benchmarks.common import ROOT, log, note_timing


def _student(teacher):
    """The trained models/lines student (a students.LinesStudent) when there is one, else the
    params.yaml student untrained: `student.init` random (seeded) or a copy of the teacher (speed
    does not depend on the weights)."""
    import torch

    from lines_model.config import load_params
    from lines_model.students import init_student, load_student

    if (ROOT / "models" / "lines" / "diffusion_pytorch_model.safetensors").exists():
        student, _ = load_student(ROOT / "models" / "lines")
        return student, "models/lines"
    cfg = load_params(ROOT / "params.yaml").student
    torch.manual_seed(0)
    student = init_student(cfg, teacher.sample_shape, teacher=teacher).eval().requires_grad_(False)
    how = "random init" if cfg.init == "random" else "untrained copy of the teacher"
    return student, f"params.yaml student, {how} (models/lines not trained yet)"


def bench_onestep(teacher, S: dict, r: dict | None = None, save=lambda: None) -> dict:
    """Fills `r` (a new dict by default) batch by batch, calling `save()` after each; returns it."""
    import torch

    from lines_model.config import load_params
    from lines_model.samplers import lines_sample, teacher_sampler
    from lines_model.students import count_parameters
    from lines_model.timing import time_interleaved

    pc = load_params(ROOT / "params.yaml").pairs
    student, source = _student(teacher)
    sample = teacher_sampler(pc.sampler)
    nfe = pc.steps
    batches = sorted(S["onestep_batches"])
    big = batches[-1]
    r = {} if r is None else r
    r.update(
        {
            "onestep_student": source,
            "onestep_student_params": count_parameters(student),
            "onestep_teacher_sampler": f"{pc.sampler}"
            + (f" order {pc.order}" if pc.sampler == "dpmsolver++" else "")
            + f", {nfe} steps",
            "onestep_batches": batches,
            "onestep_repeats": S["onestep_repeats"],
            "onestep_ceiling_batch": big,
        }
    )
    noise = torch.randn((big, *teacher.sample_shape), generator=torch.Generator().manual_seed(0))
    for b in batches:
        n = noise[:b]
        log(f"one-step: batch {b}: teacher {r['onestep_teacher_sampler']} vs student 1 step, interleaved")
        t = time_interleaved(
            {
                "teacher": lambda: sample(
                    teacher.unet, teacher.scheduler_config, n, pc.steps, order=pc.order, lambda_min=pc.lambda_min
                ),
                "student": lambda: lines_sample(student, n, 1),
            },
            images_per_call=b,
            rounds=S["onestep_repeats"],
            warmup=1,
            reference="teacher",
        )
        r[f"onestep_teacher_ms_per_image_b{b}"] = t["teacher"].ms_per_image
        r[f"onestep_student_ms_per_image_b{b}"] = t["student"].ms_per_image
        r[f"onestep_teacher_ms_per_image_iqr_b{b}"] = t["teacher"].ms_per_image_iqr
        r[f"onestep_student_ms_per_image_iqr_b{b}"] = t["student"].ms_per_image_iqr
        r[f"onestep_speedup_b{b}"] = t["teacher"].ms_per_image / t["student"].ms_per_image
        r[f"onestep_speedup_iqr_b{b}"] = t["student"].speedup_iqr  # of the ratios round by round
        r["onestep_rounds"] = t["teacher"].rounds  # onestep_repeats, rounded up to a multiple of the two entries
        note_timing(r, f"one-step, batch {b}", t)
        save()

    # Per-call ceiling at the largest batch: what the speedup would be if the teacher's sampler
    # cost nothing but its network calls.
    n = noise[:big]
    tt = torch.full((), 500)
    log(f"one-step: batch {big}: one teacher network call vs one student call, interleaved")
    with torch.no_grad():
        calls = time_interleaved(
            {"teacher": lambda: teacher.unet(n, tt), "student": lambda: student(n, 0.0)},
            images_per_call=big,
            rounds=max(3, S["onestep_repeats"]),
            warmup=1,
            reference="teacher",
        )
    call_t, call_s = calls["teacher"].ms_per_image * big, calls["student"].ms_per_image * big
    r[f"onestep_teacher_call_ms_b{big}"] = call_t
    r[f"onestep_student_call_ms_b{big}"] = call_s
    r[f"onestep_speedup_ceiling_b{big}"] = nfe * call_t / call_s
    r[f"onestep_speedup_ceiling_iqr_b{big}"] = nfe * calls["student"].speedup_iqr
    note_timing(r, f"one-step ceiling, batch {big}", calls)
    save()
    return r
