"""Recap questions of lesson 05 (distillation and repair)."""

from ..recap import Question

QUESTIONS = {
    "05.1": Question(
        answer="b",
        explanation="Liu et al. rank the last convolutional layer's channels by their mean activation on clean data "
                    "and switch off the least active (dormant) ones first, stopping when the clean accuracy has "
                    "dropped by more than a bound (4 % in the paper). The defender has no triggered inputs, so (a) "
                    "is not available to them; in this lesson no channel was really dormant, so the pruning alone "
                    "changed little and the fine-tuning did the work.",
    ),
    "05.2": Question(
        answer=0.93, tolerance=1e-3,
        explanation="The bound is relative to the starting accuracy: start - max_acc_drop = 0.97 - 0.04 = 0.93. The "
                    "first channel whose removal takes the accuracy below 0.93 is switched back on and the loop stops.",
    ),
    "05.3": Question(
        answer="c",
        explanation="The student never sees a trigger, but it copies the teacher's soft outputs, which can carry the "
                    "backdoor's association when the trigger's feature occurs faintly in clean data; Ge et al. (2021) "
                    "built backdoors that survive distillation. So distillation is a measurement away from a "
                    "defence: check the student's ASR.",
    ),
    "05.4": Question(
        answer="b",
        explanation="NAD's teacher is the backdoored model after a short fine-tuning on the small clean set; the "
                    "student (the backdoored model) is trained with cross-entropy plus beta_l times the distance "
                    "between the two models' normalised attention maps at several blocks.",
    ),
}
