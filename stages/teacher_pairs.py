"""Stage teacher_pairs: run the teacher's deterministic sampler on seeded noise.

Writes data/pairs (pairs.count training pairs) and data/heldout (pairs.heldout evaluation pairs,
from a separate noise stream so that changing pairs.count never changes them). A killed run
resumes from its last complete shard in scratch/; under `torchrun --nproc_per_node N` each
process writes its own shards.
"""

from lines_model import generation, noise, preflight, provenance, runtime
from lines_model.cli import run_stage
from lines_model.teachers import load_teacher


def main(params) -> None:
    p = params.pairs
    preflight.check(params)
    # Each folder records its own count: a new held-out count leaves the training pairs as they are.
    made_from = {k: provenance.made_from("teacher_pairs", params, keys=(f"pairs.{k}",)) for k in ("count", "heldout")}
    runtime.set_threads(params.runtime)
    st = runtime.state()
    teacher = load_teacher(params.teacher.model, params.teacher.revision, device=st.device)
    teacher.unet = runtime.prepare_inference(teacher.unet, st.device, params.runtime)
    common = dict(
        sampler=p.sampler,
        steps=p.steps,
        order=p.order,
        lambda_min=p.lambda_min,
        seed=p.seed,
        batch_size=p.batch_size,
        shard_size=p.shard_size,
        rank=st.process_index,
        world_size=st.num_processes,
        barrier=st.wait_for_everyone,
        precision=runtime.inference_precision(st.device, p.mixed_precision),
        scratch_dir="scratch",
    )
    generation.generate(
        teacher,
        "data/pairs",
        count=p.count,
        stream=noise.TRAIN,
        desc="train pairs",
        made_from=made_from["count"],
        **common,
    )
    generation.generate(
        teacher,
        "data/heldout",
        count=p.heldout,
        stream=noise.HELDOUT,
        desc="held-out pairs",
        made_from=made_from["heldout"],
        **common,
    )


if __name__ == "__main__":
    run_stage(main, __doc__.splitlines()[0])
