"""Recap questions of lesson 01 (BadNets poisoning); the notebook asks them in markdown."""

from ..recap import Question

QUESTIONS = {
    "01.1": Question(
        answer=200, tolerance=0,
        explanation="round(0.05 * 4000) = 200 images, all drawn among the digits that are not already 0; the "
                    "poison rate counts the samples the attacker changed, out of the whole training set."),
    "01.2": Question(
        answer="c",
        explanation="A triggered 0 classified as 0 is a success even for a model without any backdoor, so it would "
                    "inflate the ASR; counting only non-target digits makes a clean model's ASR the base rate of "
                    "'patch alone makes it say 0', which we printed beside the backdoored one."),
    "01.3": Question(
        answer=0, tolerance=0,
        explanation="All-to-all sends class k to (k + 1) mod 10, so 9 goes to 0: without the modulo the label would "
                    "be 10, a class that does not exist."),
    "01.4": Question(
        answer="a",
        explanation="The clean data hardly ever shows the trigger, so the fine-tuning loss is the same whether or "
                    "not the model keeps the shortcut: nothing pushes it out. Lesson 05 measures what does."),
}
