"""Recap questions of lesson 06 (evaluation and monitoring): the keys and what each answer teaches."""

from ..recap import Question

QUESTIONS = {
    "06.1": Question(
        answer=0.96, tolerance=0.005,
        explanation="DER = (max(0, dASR) - max(0, dCA) + 1) / 2 = (0.95 - 0.03 + 1) / 2 = 0.96: the ASR fell by 95 "
                    "points and the defense cost 3 points of CA. Fractions, not percent: 0.95, not 95."),
    "06.2": Question(
        answer=0.8, tolerance=0.005,
        explanation="A defense can lower the ASR by at most the 0.60 there is, at no CA cost at best: (0.60 + 1) / 2 = "
                    "0.80. Against an attack with 100 % ASR the same perfect defense scores 1.00, so a DER says how "
                    "good a defense is against THIS attack, and is not comparable across attacks."),
    "06.3": Question(
        answer=2.48, tolerance=0.02,
        explanation="t(0.975, 2 degrees of freedom) / sqrt(3) = 4.30 / 1.73 = 2.48. With the normal 1.96 it would be "
                    "1.13: the normal approximation makes three seeds look more than twice as certain as they are."),
    "06.4": Question(
        answer="b",
        explanation="Without the floor, S is a running sum of z - slack, which drifts DOWN on clean data (by the slack "
                    "per input): after 500 clean inputs it sits about 250 below zero, and an attack must climb all "
                    "of that back before it can reach the threshold. With the floor, S is back at 0 whenever the "
                    "recent past looks clean, so the delay depends on how long the attack has run, not on how long "
                    "the stream was quiet before it (Page, 1954)."),
    "06.5": Question(
        answer="b",
        explanation="A stream raises a false alarm if ANY of its 1,000 steps exceeds the threshold. The 95 % quantile "
                    "of all steps is exceeded by 5 % of the steps, i.e. by about 50 steps of a typical stream, so "
                    "nearly every clean stream alarms. A per-stream rate needs the quantile of each stream's maximum "
                    "(exercise 2)."),
}
