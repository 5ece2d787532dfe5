"""Recap questions of lesson 02 (stealthy triggers); the notebook asks them in markdown."""

from ..recap import Question

QUESTIONS = {
    "02.1": Question(
        answer=0.2, tolerance=0.005,
        explanation="x' - x = alpha * (pattern - x), and |pattern - x| <= 1 for pixels in [0, 1], so no pixel "
                    "moves by more than alpha: the blend's L-inf distance is at most 0.2, however visible it is."),
    "02.2": Question(
        answer="b",
        explanation="Noise-mode images are warped by the field plus random jitter and keep their true labels, so "
                    "'warped a bit' alone is not a reason to answer the target; only the exact field is. (Our "
                    "other random fields measured above show how far that worked on our small model.)"),
    "02.3": Question(
        answer="b",
        explanation="The grid lives in [-1, 1], so one pixel is about 2 / H wide; s * field / H therefore moves a "
                    "pixel by about s * field / 2 pixels whatever the image size. Without it, s = 0.5 would move "
                    "pixels by a quarter of the whole image."),
    "02.4": Question(
        answer="d",
        explanation="Only the clean-label attack keeps every label right, so a label audit passes it; a look at "
                    "the images still sees its patch (and its perturbation). The dirty-label attacks all have "
                    "digits labelled 0 that are not zeros."),
}
