"""One job of tests/test_distributed.py, started by torchrun: trains the configs of argv[2] on test_distributed.small_world's benchmark
(resuming what an earlier, failed job left), builds that benchmark's trunk-feature cache sharded across the ranks under argv[1]/cache,
predicts the test split with the first run's last weights (sharded, gathered), and writes the run summaries and those logits
to argv[1] (rank 0).
argv[3], a fault to inject: "" (none), "exit:K" (rank 1 exits with code 3 after step K of the first config) or "hang:K" (it stops answering)."""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import torch
from test_distributed import small_world
from spurnb.cache import cached_image_features
from spurnb.distributed import process_group
from spurnb.train import Source, TrainConfig, load_method, predict, train

out, cfgs, fault = Path(sys.argv[1]), [TrainConfig(**c) for c in json.loads(sys.argv[2])], sys.argv[3]
torch.set_num_threads(1)


def inject(run, event):
    if not fault or event != "after_step" or run.world.rank != 1: return
    kind, step = fault.split(":")
    if run.global_step == int(step):
        print(f"rank 1: {kind} after step {step} (the test's fault) at t={time.time():.3f}", file=sys.stderr, flush=True)
        if kind == "exit": os._exit(3)
        time.sleep(3600)


with process_group("cpu") as (world, device):
    splits, task, ad = small_world()
    summaries = [train(c, ad, splits, out / "runs", task, resume=True, callbacks=[inject] if k == 0 else [], progress=False)
                 for k, c in enumerate(cfgs)]
    cached_image_features(ad, splits["train"], root=out / "cache", progress=False)
    m = load_method(summaries[0]["run_dir"], ad, task, "last")
    logits = predict(m, Source(splits["test"], m), batch_size=7, world=world)["logits"]   # sharded across the ranks, gathered
    if world.main:
        (out / "summaries.json").write_text(json.dumps(summaries, default=str)); torch.save(logits, out / "test_logits.pt")
