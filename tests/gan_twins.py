"""What the MoCoGAN and DVD-GAN tests share: lazy R1 seen in the discriminators' weights (imported by the tests)."""

from collections.abc import Callable

import torch
from torch import nn

from vgcourse.train import Trainer


def assert_r1_moves_the_discriminators_only_on_its_steps(make: Callable[[float], tuple[nn.ModuleDict, Trainer]],
                                                         discriminators: tuple[str, ...]) -> None:
    """Twins built by ``make(r1_gamma)`` with R1 (γ = 1) and without (γ = 0), R1 every 2nd step: identical
    discriminators after steps 0 and 1 (no R1; step 0 is the FLOP-counted one), different after step 2, where R1 is
    due and a logged r1 > 0 must also change D's update."""
    a, ta = make(1.0)
    b, tb = make(0.0)

    def same() -> bool:
        return all(torch.equal(p, q) for k in discriminators for p, q in zip(a[k].parameters(), b[k].parameters()))

    for seed, steps in ((1, 2), (2, 3)):
        for trainer in (ta, tb):  # the same draws for both twins
            torch.manual_seed(seed)
            trainer.fit(steps)
        if steps == 2:
            assert same()
    assert ta.history[-1]["r1"] > 0 and not same()
