"""Exercise checks, one module per topic; every check is re-exported here.

Lesson authors: add `from .mytopic import check_x` below for a new topic.
"""

from .core import GRADING_ENV, learner_or_reference, run_check
from .detection import check_mad_anomaly_index, check_superimposed_entropy
from .evaluation import check_cusum, check_der, check_mean_ci
from .hunt import check_detector, check_invert_triggers, check_patch_scan
from .poisoning import check_patch_trigger, check_poison_samples, check_sha256_file, check_verify_manifest
from .recap import Question, recap
from .repair import check_attention_map, check_distillation_loss
from .robustness import check_fgsm, check_pgd_step
from .stealth import check_blend, check_distances

__all__ = [
    "GRADING_ENV", "learner_or_reference", "run_check", "Question", "recap",
    "check_attention_map", "check_distillation_loss", "check_fgsm", "check_pgd_step",
    "check_cusum", "check_der", "check_mean_ci", "check_detector", "check_invert_triggers", "check_patch_scan",
    "check_patch_trigger", "check_poison_samples", "check_sha256_file", "check_verify_manifest",
    "check_blend", "check_distances", "check_mad_anomaly_index", "check_superimposed_entropy",
]
