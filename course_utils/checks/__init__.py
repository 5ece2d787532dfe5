"""Exercise checks, one module per topic; every check is re-exported here.

Lesson authors: add `from .mytopic import check_x` below for a new topic.
"""

from .core import GRADING_ENV, learner_or_reference, run_check
from .detection import (
    check_nc_objective,
    check_nc_update_costs,
    check_spectral_signature_class_scores,
    check_superimposed_entropy,
)
from .evaluation import check_cusum_alarm, check_threshold_for_rate
from .hub import check_load_verified
from .hunt import check_detector, check_invert_triggers, check_patch_scan
from .poisoning import check_patch_trigger, check_poison_dataset, check_sha256_file, check_verify_manifest
from .recap import Question, recap
from .repair import check_distillation_loss, check_nad_loss, check_prune_dormant
from .robustness import check_fgsm, check_pgd
from .stealth import check_blend, check_wanet_warp
from .tabular import check_poison_table

__all__ = [
    "GRADING_ENV", "learner_or_reference", "run_check", "check_nc_objective", "check_nc_update_costs",
    "check_spectral_signature_class_scores", "check_superimposed_entropy", "check_cusum_alarm",
    "check_threshold_for_rate", "check_load_verified", "check_detector", "check_invert_triggers",
    "check_patch_scan", "check_patch_trigger", "check_poison_dataset", "check_sha256_file",
    "check_verify_manifest", "Question", "recap", "check_distillation_loss", "check_nad_loss",
    "check_prune_dormant", "check_fgsm", "check_pgd", "check_blend", "check_wanet_warp", "check_poison_table",
]
