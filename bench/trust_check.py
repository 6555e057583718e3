"""Label trust of the default hybrid on a temporal split: accuracy, the precision/coverage trade on the changes after
the cut-off, distinct confidences per rank, the served auto-label threshold (chosen on held-out history before the
cut-off) applied to the later changes, and the other repository's change texts as foreign text.

    python bench/trust_check.py ncnn,pytest      # repositories cloned under /work/bench-repos (see dev_benchmark.py)

Cut-offs as in bench/README.md; 200 cases each; prints one line per repository.
"""
import sys

import numpy as np
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from inference.evaluate import history_split
from inference.calibration import operating_point
repos = {"pytest": ("/work/bench-repos/pytest", "2025-08-18"), "ncnn": ("/work/bench-repos/ncnn", "2025-07-22")}
names = sys.argv[1].split(",")
splits = {n: history_split(repos[n][0], repos[n][1], f"/tmp/modmatch-bench/store-{n}") for n in repos}
for n in names:
    from inference.cache import cached_matcher
    m = cached_matcher("hybrid", splits[n].graph, f"/tmp/modmatch-bench/cache-{n}")
    print(n, "weights", m.weights, "mention", m.mention_weight, "operating", m.operating, flush=True)
    own = splits[n].cases[:200]
    foreign = [c.text for o in repos if o != n for c in splits[o].cases[:200]]
    R = [m.match(c.text, k=5) for c in own]
    ok = [r[0].module in c.gold for r, c in zip(R, own)]
    acc3 = np.mean([any(x.module in c.gold for x in r[:3]) for r, c in zip(R, own)])
    conf = [r[0].confidence for r in R]
    thr, cov, prec = operating_point(conf, ok, 0.95)
    distinct = np.mean([all(a.confidence > b.confidence for a, b in zip(r, r[1:])) for r in R])
    F = [m.match(t, k=1)[0].confidence for t in foreign]
    op = m.operating
    print(n, f"acc1={np.mean(ok):.3f} acc3={acc3:.3f} test-thr95={thr:.3f} coverage95={cov:.3f} distinct={distinct:.2f} foreign_below_test_thr={np.mean([f < thr for f in F]):.3f}",
          f"| served op thr={op['threshold']} -> test coverage {np.mean([c >= op['threshold'] for c in conf]):.3f} precision {np.mean([o for o, c in zip(ok, conf) if c >= op['threshold']] or [0]):.3f} foreign labelled {np.mean([f >= op['threshold'] for f in F]):.3f}",
          f"| abstain own {np.mean([m.assess(c.text)['abstain'] for c in own]):.3f} foreign {np.mean([m.assess(t)['abstain'] for t in foreign]):.3f}", flush=True)
