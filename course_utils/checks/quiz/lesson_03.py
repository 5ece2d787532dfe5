"""Recap questions of lesson 03 (trigger detection)."""

from ..recap import Question

QUESTIONS = {
    "03.1": Question(answer="b", explanation=(
        "The sigmoid maps any real number into (0, 1), so Adam can take unconstrained steps on the logit and the "
        "mask still means 'how much of the pattern to stamp' at every pixel. Clipping after each step would stall "
        "the gradient at the bounds; the paper's tanh(a) / 2 + 0.5 is the same curve as sigmoid(2a).")),
    "03.2": Question(answer="c", explanation=(
        "Tran et al.'s rule removes the top 1.5 x epsilon of EVERY class: 7.5 % of each one. In the target class "
        "a third is poison, so most of it stays; in the nine clean classes every removed sample is clean. The "
        "epsilon sweep in the lesson shows recall reaching 1 only once epsilon covers the target class's share, "
        "when precision has collapsed. Epsilon bounds a class's poisoned share, not the data set's.")),
    "03.3": Question(answer="a", explanation=(
        "AUROC is the chance that a random triggered input scores above a random clean one. Below 0.5 the order is "
        "reversed, which is information: warped inputs have HIGHER entropy under overlays. The paper's one-tailed "
        "rule only rejects low entropy and misses them; a two-tailed rule calibrated on clean data catches some.")),
    "03.4": Question(answer=0.0015, tolerance=1e-6, explanation=(
        "0.995 >= 0.99 is a success, so the streak grows from 4 to 5 = patience: the cost is multiplied by "
        "up = 1.5, 0.001 -> 0.0015, and the streak restarts at 0. The trigger works, so the mask is made to pay "
        "more and shrinks.")),
}
