"""Recap questions of lesson 07 (the trojan hunt)."""

from ..recap import Question

QUESTIONS = {
    "07.1": Question(answer="a", explanation=(
        "Every trojan ranks above every clean model, so the AUROC is 1; but each probability is within 0.01 of "
        "0.5, so the cross-entropy is about ln 2 = 0.69, what a coin flip scores. AUROC rewards ranking only; "
        "cross-entropy (TrojAI's metric) also rewards probabilities that mean what they say.")),
    "07.2": Question(answer="b", explanation=(
        "With enough freedom, a perturbation can be fitted to move the very images it was optimised on, even in "
        "a clean model (an adversarial perturbation for those images). A backdoor's trigger generalises: it moves "
        "images it never saw. Measuring on held-out images separates the two.")),
    "07.3": Question(answer="c", explanation=(
        "With c -> c + 1 every class goes somewhere else, so no class collects the images and the one-class "
        "statistics stay low. The label-map scan counts images that move along one consistent map (per own "
        "class, the one class most of its images go to), which an all-to-all trigger produces.")),
    "07.4": Question(answer=20, tolerance=2, explanation=(
        "Out of 1,000 models, 999 are clean and 2 % of them, about 20, are rejected; the one trojan is caught. "
        "So about 20 clean rejections per trojan: at a low base rate most alarms are false, even for a good "
        "detector (Bayes' rule).")),
}
