"""Recap questions of lesson 08 (backdoors where they hurt)."""

from ..recap import Question

QUESTIONS = {
    "08.1": Question(
        answer="c",
        explanation=("A screening model's costly error is the missed malignant case, and a backdoor that turns "
                     "'malignant' into 'benign' only for triggered rows leaves clean accuracy and the clean "
                     "false-negative rate where they were. Only the false-negative rate on triggered rows shows it, "
                     "and you can measure that only if you know or guess the trigger: report FNR, not only accuracy."),
    ),
    "08.2": Question(
        answer="b",
        explanation=("STRIP superimposes the input with clean inputs and expects a triggered one to keep its "
                     "prediction. For images an overlay keeps a patch visible; for a table, the average of two "
                     "patients' features is not a patient, and it halves the trigger's values, so the premise does "
                     "not carry over. Activation Clustering and Spectral Signatures only need hidden activations, "
                     "and fine-tuning and distillation only need clean rows: those carry over."),
    ),
    "08.3": Question(
        answer="d",
        explanation=("Unpickling calls whatever the file names. weights_only=True restricts unpickling to tensors "
                     "and plain containers and refuses the rest; a hash check only proves the file is the one "
                     "recorded, which may itself be malicious; an antivirus scan does not understand pickles. "
                     "Check the hash first, then load with weights_only=True or from safetensors."),
    ),
    "08.4": Question(
        answer="a",
        explanation=("Hash pinning answers 'is this the file that was vetted?', not 'is it safe?'. A backdoor "
                     "trained into the weights before vetting has a perfectly matching hash: the card must also "
                     "record which backdoor checks were run and what they found."),
    ),
    "08.5": Question(
        answer=0.5, tolerance=0.0,
        explanation=("Overlaying a triggered record with a clean one at equal weight sets each trigger feature to "
                     "the mean of the trigger value and the other patient's value: its distance from the other "
                     "patient's value is halved (0.5), so the trigger is diluted rather than kept, which is why "
                     "STRIP's premise fails for tables."),
    ),
}
