"""Recap questions of lesson 04 (adversarial training)."""

from ..recap import Question

QUESTIONS = {
    "04.1": Question(
        answer=0.6, tolerance=1e-3,
        explanation="The step moves it to 0.58 + 0.05 = 0.63; the projection into [x - eps, x + eps] = [0.4, 0.6] "
                    "brings it back to 0.6, and the clip to [0, 1] leaves it there. The ball is centred on the "
                    "clean 0.5, not on the current 0.58, so PGD can never drift further than eps.",
    ),
    "04.2": Question(
        answer="b",
        explanation="The min-max only covers perturbations inside the L-inf ball of radius eps. The patch changes "
                    "9 pixels by up to 1.0, more than three times the radius, so no adversarial example in training "
                    "looks like the trigger, and the model keeps using it as a strong, easy feature. The measured "
                    "robust accuracy shows the training did make the model robust (so not a), and poisoned data does "
                    "not stop adversarial training from working as designed (so not c).",
    ),
    "04.3": Question(
        answer="c",
        explanation="Measured in the lesson: the network's own input gradient on black pixels is almost never "
                    "exactly zero. The zero comes from the clip: the search feeds clip(x + delta, 0, 1) to the model, "
                    "black pixels are exactly 0, the clip's lower edge, and PyTorch's clamp passes no gradient at "
                    "its bounds. Noise moves them inside (0, 1). It is the course's addition, not the paper's.",
    ),
    "04.4": Question(
        answer="b",
        explanation="I-BAU solves the min-max with an implicit hypergradient (the outer gradient through the inner "
                    "solution, approximated by a fixed-point iteration). The course alternates a plain inner search "
                    "and ordinary training, keeps a pool of all perturbations found, and smooths the search with "
                    "noise: 'adversarial unlearning in the spirit of I-BAU'. Neither needs the trigger.",
    ),
}
