"""Recap questions of lesson 00 (setup and threat models); the notebook asks them in markdown."""

from ..recap import Question

QUESTIONS = {
    "00.1": Question(
        answer="b",
        explanation="A matching SHA-256 proves the file is byte for byte the one you hashed, nothing more: if it "
                    "was poisoned before you vetted it, the hash confirms the poisoned file just as happily."),
    "00.2": Question(
        answer="b",
        explanation="Outsourced training hands the attacker the data, the code and the training run: the model "
                    "you get back is a black box, and only model-level checks (lessons 03-05) can look inside it."),
    "00.3": Question(
        answer=60, tolerance=4,
        explanation="A good hash changes each output bit with probability 1/2 however small the input change "
                    "(the avalanche effect), so each hex character stays the same with probability 1/16: about "
                    "64 * 15/16 = 60 of 64 change (about 30 of the 32 printed above)."),
    "00.4": Question(
        answer="c",
        explanation="One run is an anecdote: the spread over seeds is the noise any difference between two models "
                    "must beat before it means something. A 0.3-point drop in clean accuracy is nothing when seeds "
                    "differ by 0.5 points."),
}
